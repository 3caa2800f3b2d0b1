import ArgumentParser
import Logging
import RdKafka
import ServiceLifecycle
import Synchronization

/// `conveyor consume`: reads topics in a consumer group and prints one JSON line per record and per assignment
/// change, committing what it printed.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Consume topics in a consumer group, printing one JSON line per record.",
        discussion: """
            Lines are {"topic","partition","offset","key","value","headers"} for records (key and value as \
            UTF-8 text, invalid bytes replaced) and {"event":"assigned"|"revoked"|"lost","partitions":[...]} \
            for assignment changes. Offsets of printed records are committed; SIGTERM or SIGINT leaves the \
            group cleanly.
            """
    )

    @OptionGroup var client: ClientOptions

    @Option(name: [.customShort("g"), .long], help: "The consumer group.")
    var group: String

    @Option(name: [.customShort("t"), .long], help: "A topic to consume (repeatable).")
    var topic: [String]

    @Option(help: "Exit after this many records.")
    var count: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard !self.topic.isEmpty else { throw ValidationError("--topic: give at least one topic") }
        guard !self.group.isEmpty else { throw ValidationError("--group: must not be empty") }
        if let count = self.count, count <= 0 {
            throw ValidationError("--count: must be positive, got \(count)")
        }
    }

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.consume")
        let configuration = try self.client.makeConfiguration(groupID: self.group)
        let printer = RecordPrinter(limit: self.count)
        let consumer = try KafkaConsumer(configuration: configuration, delegate: printer, logger: logger)
        try await consumer.subscribe(self.topic)
        let service = ConsumerService(consumer: consumer, printer: printer)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

/// Runs a consumer until graceful shutdown or until its printer printed enough, then closes it.
struct ConsumerService: Service {
    let consumer: KafkaConsumer
    let printer: RecordPrinter

    func run() async throws {
        await withGracefulShutdownHandler {
            await self.printer.finished()
        } onGracefulShutdown: {
            self.printer.finish()
        }
        try await self.consumer.close()
    }
}

/// Prints records and assignment changes as JSON lines, storing the offset of every printed record.
final class RecordPrinter: KafkaConsumerDelegate {
    private struct State {
        var printed = 0
        var done = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let limit: Int?
    private let state = Mutex(State())

    init(limit: Int?) {
        self.limit = limit
    }

    func consumer(_ control: KafkaConsumerControl, didReceive records: [KafkaRecord]) {
        var next: [TopicPartition: Int64] = [:]
        var output = ""
        let allowed = self.state.withLock { state in
            let allowed = self.limit.map { max(0, min(records.count, $0 - state.printed)) } ?? records.count
            state.printed += allowed
            return allowed
        }
        for record in records.prefix(allowed) {
            var line = JSONLine()
            line.add("topic", record.topic)
            line.add("partition", record.partition)
            line.add("offset", record.offset)
            line.add("key", JSONLine.text(record.key))
            line.add("value", JSONLine.text(record.value))
            var headers = JSONLine()
            for header in record.headers {
                headers.add(header.name, header.value.map { String(decoding: $0, as: UTF8.self) })
            }
            line.add("headers", json: headers.text)
            output += line.text + "\n"
            next[record.topicPartition] = record.offset + 1
        }
        Self.write(output)
        do {
            try control.store(next.map { TopicPartitionOffset($0.key, offset: $0.value) })
            try control.commitAsynchronously()
        } catch {
            Self.write(Self.event("error", detail: "\(error)"))
        }
        if let limit = self.limit, self.state.withLock({ $0.printed >= limit }) {
            self.finish()
        }
    }

    func consumer(_ control: KafkaConsumerControl, didAssign partitions: [TopicPartition]) {
        Self.write(Self.event("assigned", partitions))
    }

    func consumer(_ control: KafkaConsumerControl, willRevoke partitions: [TopicPartition]) {
        do {
            try control.commit()
        } catch {
            Self.write(Self.event("error", detail: "\(error)"))
        }
        Self.write(Self.event("revoked", partitions))
    }

    func consumer(_ control: KafkaConsumerControl, didLose partitions: [TopicPartition]) {
        Self.write(Self.event("lost", partitions))
    }

    func consumer(_ control: KafkaConsumerControl, didFail error: KafkaError) {
        Self.write(Self.event("error", detail: error.description))
    }

    /// Suspends until ``finish()``.
    func finished() async {
        await withCheckedContinuation { continuation in
            let done = self.state.withLock { state in
                if !state.done { state.waiter = continuation }
                return state.done
            }
            if done { continuation.resume() }
        }
    }

    /// Ends ``finished()``.
    func finish() {
        let waiter = self.state.withLock { state in
            state.done = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private static func event(_ name: String, _ partitions: [TopicPartition] = [], detail: String? = nil) -> String {
        var line = JSONLine()
        line.add("event", name)
        let list = partitions.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }.map { partition in
            var entry = JSONLine()
            entry.add("topic", partition.topic)
            entry.add("partition", partition.partition)
            return entry.text
        }
        line.add("partitions", json: "[" + list.joined(separator: ",") + "]")
        if let detail {
            line.add("detail", detail)
        }
        return line.text + "\n"
    }

    private static func write(_ text: String) {
        guard !text.isEmpty else { return }
        StandardOutput.write(text)
    }
}
