import ArgumentParser
import Logging
import RdKafka
import Synchronization

/// `conveyor produce`: writes records to a topic, from standard input or generated, and waits for every
/// delivery report.
struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce records to a topic: one per line of standard input, or --count generated ones.",
        discussion: """
            With --key-delimiter, the text before the first delimiter of a line is the key. Generated records \
            have keys key-<i mod --keys> and values of --value-size bytes. Exits non-zero if any record \
            was not delivered.
            """
    )

    @OptionGroup var client: ClientOptions

    @Option(name: [.customShort("t"), .long], help: "The topic to write to.")
    var topic: String

    @Option(help: "Generate this many records instead of reading standard input.")
    var count: Int?

    @Option(help: "Value size of generated records, in bytes.")
    var valueSize: Int = 100

    @Option(help: "Number of distinct keys of generated records.")
    var keys: Int = 1000

    @Option(help: "Split each input line into key and value at the first occurrence of this text.")
    var keyDelimiter: String?

    @Option(help: "Write every record to this partition instead of letting the key choose.")
    var partition: Int32?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard !self.topic.isEmpty else { throw ValidationError("--topic: must not be empty") }
        if let count = self.count, count < 0 { throw ValidationError("--count: must not be negative") }
        guard self.valueSize >= 0 else { throw ValidationError("--value-size: must not be negative") }
        guard self.keys > 0 else { throw ValidationError("--keys: must be positive") }
        if let delimiter = self.keyDelimiter, delimiter.isEmpty {
            throw ValidationError("--key-delimiter: must not be empty")
        }
        if let partition = self.partition, partition < 0 {
            throw ValidationError("--partition: must not be negative")
        }
    }

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.produce")
        let producer = try KafkaProducer(configuration: try self.client.makeConfiguration(), logger: logger)
        try await producer.checkConnectivity()
        let failures = Mutex<(count: Int, first: KafkaError?)>((0, nil))
        var produced = 0
        let onDelivery: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void = { result in
            if case .failure(let error) = result {
                failures.withLock { state in
                    state.count += 1
                    state.first = state.first ?? error
                }
            }
        }
        if let count = self.count {
            let padding = [UInt8](repeating: UInt8(ascii: "x"), count: self.valueSize)
            for index in 0..<count {
                let value = Array((Array("value-\(index)-".utf8) + padding).prefix(self.valueSize))
                let message = KafkaProducerMessage(
                    topic: self.topic, partition: self.partition, key: Array("key-\(index % self.keys)".utf8), value: value
                )
                try await producer.produce(message, onDelivery: onDelivery)
                produced += 1
            }
        } else {
            while let line = readLine() {
                try await producer.produce(self.message(from: line), onDelivery: onDelivery)
                produced += 1
            }
        }
        await producer.close(timeout: .seconds(30))
        let (failed, first) = failures.withLock { $0 }
        logger.info("Produced", metadata: ["records": "\(produced - failed)", "failed": "\(failed)", "topic": "\(self.topic)"])
        if let first {
            throw ValidationError("\(failed) of \(produced) records were not delivered; first error: \(first)")
        }
    }

    private func message(from line: String) -> KafkaProducerMessage {
        guard let delimiter = self.keyDelimiter, let range = line.firstRange(of: delimiter) else {
            return KafkaProducerMessage(topic: self.topic, partition: self.partition, value: Array(line.utf8))
        }
        return KafkaProducerMessage(
            topic: self.topic,
            partition: self.partition,
            key: Array(line[..<range.lowerBound].utf8),
            value: Array(line[range.upperBound...].utf8)
        )
    }
}
