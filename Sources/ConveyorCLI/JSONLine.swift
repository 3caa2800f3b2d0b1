/// Builds one JSON object per line for the machine-readable output of `consume` and `bench-consumer`.
struct JSONLine {
    private var fields: [String] = []

    mutating func add(_ name: String, _ value: String?) {
        self.fields.append("\(Self.quote(name)):\(value.map(Self.quote) ?? "null")")
    }

    mutating func add(_ name: String, _ value: some BinaryInteger) {
        self.fields.append("\(Self.quote(name)):\(value)")
    }

    mutating func add(_ name: String, _ value: Double) {
        self.fields.append("\(Self.quote(name)):\(value)")
    }

    /// Adds an already-encoded JSON value.
    mutating func add(_ name: String, json: String) {
        self.fields.append("\(Self.quote(name)):\(json)")
    }

    var text: String { "{" + self.fields.joined(separator: ",") + "}" }

    /// A JSON string literal.
    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Bytes as text: UTF-8, with invalid sequences replaced; `nil` stays `nil`.
    static func text(_ bytes: ArraySlice<UInt8>?) -> String? {
        bytes.map { String(decoding: $0, as: UTF8.self) }
    }
}
