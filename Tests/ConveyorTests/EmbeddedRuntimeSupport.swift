import Conveyor
import ConveyorTestKit
import Foundation
import Logging
import RdKafka

/// A logger that keeps the tests' output to failures.
let quietLogger: Logger = {
    var logger = Logger(label: "conveyor.tests")
    logger.logLevel = .critical
    return logger
}()

/// Produces `messages` to the embedded broker and waits until all are delivered.
func produce(_ messages: [KafkaProducerMessage], to kafka: EmbeddedKafka) async throws {
    let producer = try KafkaProducer(configuration: try kafka.testConfiguration(), logger: quietLogger)
    for message in messages {
        try await producer.produce(message) { _ in }
    }
    try await producer.flush(timeout: .seconds(60))
    await producer.close()
}

/// A runtime configuration for the embedded broker, running `handlers` on `topic` (group `<topic>.<handler>`),
/// with short timeouts and a journal directory of its own.
func runtimeConfiguration(_ kafka: EmbeddedKafka, topic: String, handlers: [String]) -> RuntimeConfiguration {
    var configuration = RuntimeConfiguration(bootstrapServers: kafka.bootstrapServers)
    configuration.journalDirectory = NSTemporaryDirectory() + "conveyor-journal-\(UUID().uuidString)"
    configuration.sessionTimeout = .seconds(6)
    configuration.commitInterval = .milliseconds(200)
    configuration.handlers = handlers.map { name in
        var settings = RuntimeConfiguration.HandlerSettings(name: name)
        settings.groupID = "\(topic).\(name)"
        settings.topics = [topic]
        return settings
    }
    return configuration
}

/// Reads every record of `topic`, from the start, into a collector (in a group of its own).
func collect(_ topic: String, on kafka: EmbeddedKafka) async throws -> (KafkaConsumer, RecordCollector) {
    let collector = RecordCollector()
    var configuration = try kafka.testConfiguration(groupID: "reader-\(topic)-\(UUID())")
    try configuration.set("auto.offset.reset", "earliest")
    let consumer = try KafkaConsumer(configuration: configuration, delegate: collector, logger: quietLogger)
    try await consumer.subscribe([topic])
    return (consumer, collector)
}

/// The last header `name` of `record`, as UTF-8 text.
func header(_ record: KafkaRecord, _ name: String) -> String? {
    record.headers.last { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
}

/// Checks `condition` every 20 ms until it holds or `timeout` passed; returns whether it held (assert on it).
@discardableResult
func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// The offset `group` committed for `partition`, `nil` if none.
func committedOffset(of group: String, _ partition: TopicPartition, on kafka: EmbeddedKafka) async throws -> Int64? {
    let admin = try KafkaAdmin(configuration: try kafka.testConfiguration(), logger: quietLogger)
    return try await admin.committedOffsets(group: group, partitions: [partition])[partition] ?? nil
}
