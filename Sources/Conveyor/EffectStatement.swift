/// A value bound to a `?` placeholder of a statement, or read back from a query.
public enum SQLValue: Sendable, Hashable {
    /// SQL `NULL`.
    case null
    /// A 64-bit integer.
    case integer(Int64)
    /// A double-precision number.
    case real(Double)
    /// Text.
    case text(String)
    /// Bytes.
    case blob([UInt8])

    /// The value as an integer, if it is one (a real is truncated).
    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .real(let value): Int64(value)
        default: nil
        }
    }

    /// The value as text, if it is text.
    public var text: String? {
        if case .text(let value) = self { value } else { nil }
    }
}

/// One statement of a transactional effect: SQL with `?` placeholders, and the values bound to them in order.
///
/// The same SQL runs on SQLite and on PostgreSQL (whose `$1, $2, ...` placeholders the PostgreSQL store writes in
/// for the `?`s outside quoted literals), so keep to the SQL both understand, such as
/// `INSERT ... ON CONFLICT (...) DO UPDATE SET ...`.
public struct EffectStatement: Sendable, Hashable {
    /// The SQL, with a `?` per argument.
    public var sql: String
    /// The values of the placeholders, in order.
    public var arguments: [SQLValue]

    /// A statement with its arguments.
    public init(_ sql: String, _ arguments: [SQLValue] = []) {
        self.sql = sql
        self.arguments = arguments
    }

    /// The SQL with PostgreSQL's numbered placeholders (`$1`, `$2`, ...) for the `?`s outside quoted strings and
    /// identifiers.
    var numberedSQL: String {
        var result = ""
        result.reserveCapacity(self.sql.utf8.count + 8)
        var number = 0
        var quote: Character?
        for character in self.sql {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                result.append(character)
            } else if character == "?" {
                number += 1
                result += "$\(number)"
            } else {
                result.append(character)
            }
        }
        return result
    }
}

/// The statements of one transactional effect, collected by the closure given to
/// ``IdempotencyContext/transaction(_:)`` and run by the store together with the completion of the record's key.
public struct EffectTransaction: Sendable {
    /// The statements collected so far, in order.
    public private(set) var statements: [EffectStatement] = []

    init() {}

    /// Adds a statement; it runs, in order, in the transaction that marks the record's key completed.
    public mutating func execute(_ sql: String, _ arguments: SQLValue...) {
        self.statements.append(EffectStatement(sql, arguments))
    }
}
