import ArgumentParser
import Conveyor
import Foundation
import RdKafka

/// `conveyor dlq`: inspect and replay a dead-letter topic.
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect and replay dead-letter topics.",
        subcommands: [DeadLetterListCommand.self, DeadLetterShowCommand.self, DeadLetterReplayCommand.self]
    )
}

/// `conveyor dlq list <topic>`.
struct DeadLetterListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a dead-letter topic: offset, original record, error, attempts, reason, time."
    )

    @Argument(help: "The dead-letter topic, such as orders.dlq.")
    var topic: String
    @OptionGroup var client: ClientOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.dlq")
        let letters = try await TopicSnapshot.read(self.topic, client: self.client, logger: logger).map(DeadLetterView.init)
        var lines = [
            ["PARTITION/OFFSET", "ORIGINAL", "ERROR", "ATTEMPTS", "REASON", "LAST FAILURE (UTC)"].joined(separator: "\t")
        ]
        for letter in letters {
            lines.append([
                "\(letter.record.partition)/\(letter.record.offset)", letter.original, letter.errorSummary(width: 60),
                letter.header(DeadLetter.Header.attempts) ?? "?", letter.header(DeadLetter.Header.reason) ?? "?",
                letter.time(DeadLetter.Header.lastFailure),
            ].joined(separator: "\t"))
        }
        lines.append("\(letters.count) dead letter(s) in \(self.topic)")
        StandardOutput.write(lines.joined(separator: "\n") + "\n")
    }
}

/// `conveyor dlq show <topic> <offset>`.
struct DeadLetterShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one dead letter: its key, value and every header."
    )

    @Argument(help: "The dead-letter topic.")
    var topic: String
    @Argument(help: "The dead letter's offset.")
    var offset: Int64
    @Option(help: "Its partition of the dead-letter topic.")
    var partition: Int32 = 0
    @OptionGroup var client: ClientOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.dlq")
        let records = try await TopicSnapshot.read(self.topic, client: self.client, logger: logger)
        guard let record = records.first(where: { $0.partition == self.partition && $0.offset == self.offset }) else {
            throw ValidationError("\(self.topic)[\(self.partition)]@\(self.offset): no such record")
        }
        var lines = [
            "dead letter: \(self.topic)[\(record.partition)]@\(record.offset)",
            "key: \(DeadLetterView.text(record.key.map(Array.init)))",
            "value: \(DeadLetterView.text(record.value.map(Array.init)))",
            "headers:",
        ]
        for header in record.headers {
            lines.append("  \(header.name): \(DeadLetterView.text(header.value))")
        }
        StandardOutput.write(lines.joined(separator: "\n") + "\n")
    }
}

/// `conveyor dlq replay <topic>`.
struct DeadLetterReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Write dead letters back to their original topic (or --to) for another try.",
        discussion: """
            A replayed record keeps its key, value and headers (its idempotency key among them) without the \
            headers Conveyor added, so it starts with a fresh attempt count. Each dead letter is replayed at \
            most once per run. Filters: --where error=TEXT (in the error type or message), reason=VALUE, \
            handler=NAME, topic=ORIGINAL-TOPIC; repeat --where to require several.
            """
    )

    @Argument(help: "The dead-letter topic.")
    var topic: String
    @Option(help: "Write to this topic instead of each record's original topic.")
    var to: String?
    @Option(help: "Replay only dead letters at or after this offset (of the dead-letter topic).")
    var from: Int64?
    @Option(help: "Replay only dead letters at or before this offset.")
    var until: Int64?
    @Option(name: .customLong("where"), help: ArgumentHelp("A filter, name=value (repeatable).", valueName: "name=value"))
    var filters: [String] = []
    @Option(help: "At most this many records per second.")
    var rate: Double?
    @Flag(help: "Print what would be replayed; write nothing.")
    var dryRun = false
    @OptionGroup var client: ClientOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try self.parsedFilters()
        if let rate = self.rate, rate <= 0 {
            throw ValidationError("--rate: must be positive, got \(rate)")
        }
        if let from = self.from, let until = self.until, from > until {
            throw ValidationError("--from \(from) is after --until \(until)")
        }
    }

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.dlq")
        let filters = try self.parsedFilters()
        let letters = try await TopicSnapshot.read(self.topic, client: self.client, logger: logger)
            .map(DeadLetterView.init)
            .filter { letter in
                (self.from.map { letter.record.offset >= $0 } ?? true)
                    && (self.until.map { letter.record.offset <= $0 } ?? true)
                    && filters.allSatisfy { letter.matches($0) }
            }
        let producer = self.dryRun ? nil : try KafkaProducer(configuration: try self.client.makeConfiguration(), logger: logger)
        var replayed = Set<TopicPartitionOffset>()
        let clock = ContinuousClock()
        let start = clock.now
        for letter in letters {
            let position = TopicPartitionOffset(TopicPartition(self.topic, letter.record.partition), offset: letter.record.offset)
            guard replayed.insert(position).inserted else { continue }
            guard let target = self.to ?? letter.header(DeadLetter.Header.originalTopic) else {
                StandardOutput.write("skip \(position): no \(DeadLetter.Header.originalTopic) header; use --to\n")
                continue
            }
            StandardOutput.write("\(self.dryRun ? "would replay" : "replay") \(position) -> \(target)\n")
            if let producer {
                if let rate = self.rate {
                    let due = start + .seconds(Double(replayed.count - 1) / rate)
                    if due > clock.now {
                        try await Task.sleep(until: due, clock: clock)
                    }
                }
                _ = try await producer.send(KafkaProducerMessage(
                    topic: target, key: letter.record.key.map(Array.init), value: letter.record.value.map(Array.init),
                    headers: letter.record.headers.filter { !DeadLetter.Header.all.contains($0.name) }
                ))
            }
        }
        await producer?.close()
        StandardOutput.write("\(self.dryRun ? "would replay" : "replayed") \(replayed.count) of \(letters.count) matching dead letter(s)\n")
    }

    private func parsedFilters() throws -> [DeadLetterView.Filter] {
        try self.filters.map { text in
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw ValidationError("--where \(text): expected name=value")
            }
            let name = String(text[..<equals])
            let value = String(text[text.index(after: equals)...])
            guard let filter = DeadLetterView.Filter(name: name, value: value) else {
                throw ValidationError("--where \(text): unknown filter '\(name)'; use error, reason, handler or topic")
            }
            return filter
        }
    }
}

/// A dead letter as the tooling shows it.
struct DeadLetterView {
    /// A `--where` filter.
    enum Filter {
        case error(String)
        case reason(String)
        case handler(String)
        case topic(String)

        init?(name: String, value: String) {
            switch name {
            case "error": self = .error(value)
            case "reason": self = .reason(value)
            case "handler": self = .handler(value)
            case "topic": self = .topic(value)
            default: return nil
            }
        }
    }

    let record: KafkaRecord

    func header(_ name: String) -> String? {
        self.record.headers.last { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    /// `topic[partition]@offset` of the original record.
    var original: String {
        "\(self.header(DeadLetter.Header.originalTopic) ?? "?")[\(self.header(DeadLetter.Header.originalPartition) ?? "?")]"
            + "@\(self.header(DeadLetter.Header.originalOffset) ?? "?")"
    }

    func errorSummary(width: Int) -> String {
        let type = self.header(DeadLetter.Header.errorType).map { $0.split(separator: ".").last.map(String.init) ?? $0 }
        let text = "\(type ?? "?"): \(self.header(DeadLetter.Header.errorMessage) ?? "")"
        return text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    /// A millisecond time header as ISO 8601.
    func time(_ name: String) -> String {
        guard let milliseconds = self.header(name).flatMap(Int64.init) else { return "?" }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }

    func matches(_ filter: Filter) -> Bool {
        switch filter {
        case .error(let text):
            (self.header(DeadLetter.Header.errorType)?.contains(text) ?? false)
                || (self.header(DeadLetter.Header.errorMessage)?.contains(text) ?? false)
        case .reason(let value): self.header(DeadLetter.Header.reason) == value
        case .handler(let value): self.header(DeadLetter.Header.handler) == value
        case .topic(let value): self.header(DeadLetter.Header.originalTopic) == value
        }
    }

    /// Bytes as UTF-8 text (invalid bytes replaced), `null` for none.
    static func text(_ bytes: [UInt8]?) -> String {
        bytes.map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}
