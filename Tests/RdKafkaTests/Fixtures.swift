import ConveyorTestKit
import Logging
import RdKafka

/// A logger for tests: only critical messages (connection errors after a test's broker stopped are expected).
let testLogger: Logger = {
    var logger = Logger(label: "conveyor.tests")
    logger.logLevel = .critical
    return logger
}()

/// Produces `messages` and waits for every delivery report; fails on the first failed delivery.
@discardableResult
func produceAll(_ messages: [KafkaProducerMessage], to kafka: EmbeddedKafka) async throws -> [KafkaDeliveryReport] {
    let producer = try KafkaProducer(configuration: try kafka.testConfiguration(), logger: testLogger)
    let reports = AwaitableState([Int: Result<KafkaDeliveryReport, KafkaError>]())
    for (index, message) in messages.enumerated() {
        try await producer.produce(message) { result in reports.update { $0[index] = result } }
    }
    let all = try await reports.wait(for: "\(messages.count) delivery reports") { $0.count == messages.count }
    await producer.close()
    return try (0..<messages.count).map { try all[$0]!.get() }
}

/// `count` small records spread over partitions `0..<partitions` in turn, with values `prefix-i`.
func numberedMessages(_ count: Int, topic: String, partitions: Int32, prefix: String = "value") -> [KafkaProducerMessage] {
    (0..<count).map { index in
        KafkaProducerMessage(
            topic: topic,
            partition: Int32(index) % partitions,
            key: Array("key-\(index)".utf8),
            value: Array("\(prefix)-\(index)".utf8)
        )
    }
}

extension KafkaRecord {
    /// The value as text, for comparisons.
    var text: String? { self.value.map { String(decoding: $0, as: UTF8.self) } }
}

/// Starts a consumer in `group` on `topics` that reports to `collector`.
func startConsumer(
    on kafka: EmbeddedKafka,
    group: String,
    topics: [String],
    collector: RecordCollector,
    adjust: (inout KafkaConfiguration) throws -> Void = { _ in }
) async throws -> KafkaConsumer {
    var configuration = try kafka.testConfiguration(groupID: group)
    try adjust(&configuration)
    let consumer = try KafkaConsumer(configuration: configuration, delegate: collector, logger: testLogger)
    try await consumer.subscribe(topics)
    return consumer
}
