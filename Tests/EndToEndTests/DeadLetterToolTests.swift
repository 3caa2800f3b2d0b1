import ConveyorTestKit
import Foundation
import Logging
import RdKafka
import Testing

private let logger: Logger = {
    var logger = Logger(label: "e2e.dlq")
    logger.logLevel = .critical
    return logger
}()

/// A dead letter as the runtime writes it (the header names are the documented format).
private func deadLetter(
    original offset: Int, value: String, errorType: String, message: String, reason: String
) -> KafkaProducerMessage {
    let headers: [(String, String)] = [
        ("idempotency-key", "order-\(offset)"),
        ("conveyor.original.topic", "orders"), ("conveyor.original.partition", "0"),
        ("conveyor.original.offset", "\(offset)"), ("conveyor.handler", "payments"),
        ("conveyor.group", "conveyor.payments"), ("conveyor.attempts", "5"),
        ("conveyor.failure.first", "1795000000000"), ("conveyor.failure.last", "1795000001000"),
        ("conveyor.error.type", errorType), ("conveyor.error.message", message), ("conveyor.reason", reason),
    ]
    return KafkaProducerMessage(
        topic: "orders.dlq", partition: 0, key: Array("k\(offset)".utf8), value: Array(value.utf8),
        headers: headers.map { KafkaHeader(name: $0.0, string: $0.1) }
    )
}

/// Runs `conveyor` with `arguments` to its end; returns its output lines.
private func conveyor(_ arguments: [String]) async throws -> [String] {
    let process = try ChildProcess(arguments + ["--log-level", "error"])
    let status = try await process.waitForExit(timeout: .seconds(60))
    #expect(status == 0, "conveyor \(arguments.joined(separator: " ")): \(process.standardError)")
    return process.lines.value
}

@Suite("`conveyor dlq`")
struct DeadLetterToolTests {
    @Test("list, show, and replay with filters, dry run and rate: replays once, without Conveyor's headers")
    func tooling() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("orders", partitions: 1)
        try kafka.createTopic("orders.dlq", partitions: 1)
        let producer = try KafkaProducer(configuration: try kafka.testConfiguration(), logger: logger)
        for message in [
            deadLetter(original: 5, value: "five", errorType: "Payments.GatewayTimeout", message: "gateway timed out", reason: "attempts-exhausted"),
            deadLetter(original: 9, value: "nine", errorType: "Conveyor.NonRetryableError", message: "no customer", reason: "non-retryable"),
            deadLetter(original: 12, value: "twelve", errorType: "Payments.GatewayTimeout", message: "gateway timed out", reason: "attempts-exhausted"),
        ] {
            _ = try await producer.send(message)
        }
        await producer.close()
        let bootstrap = ["-b", kafka.bootstrapServers]

        let list = try await conveyor(["dlq", "list", "orders.dlq"] + bootstrap)
        #expect(list.first?.hasPrefix("PARTITION/OFFSET") == true)
        #expect(list.contains { $0.hasPrefix("0/0\torders[0]@5\tGatewayTimeout: gateway timed out\t5\tattempts-exhausted\t") })
        #expect(list.contains { $0.hasPrefix("0/1\torders[0]@9\tNonRetryableError: no customer\t5\tnon-retryable") })
        #expect(list.last == "3 dead letter(s) in orders.dlq")

        let show = try await conveyor(["dlq", "show", "orders.dlq", "1"] + bootstrap)
        #expect(show.contains("value: nine"))
        #expect(show.contains("  conveyor.error.message: no customer"))

        let dryRun = try await conveyor(["dlq", "replay", "orders.dlq", "--where", "error=Timeout", "--dry-run"] + bootstrap)
        #expect(dryRun.last == "would replay 2 of 2 matching dead letter(s)")

        let clock = ContinuousClock()
        let start = clock.now
        let replay = try await conveyor(
            ["dlq", "replay", "orders.dlq", "--where", "error=Timeout", "--where", "reason=attempts-exhausted", "--rate", "2"]
                + bootstrap
        )
        #expect(clock.now - start >= .milliseconds(500), "two records at 2 per second take at least half a second")
        #expect(replay.last == "replayed 2 of 2 matching dead letter(s)")
        let ranged = try await conveyor(["dlq", "replay", "orders.dlq", "--from", "1", "--until", "1", "--to", "orders.manual"] + bootstrap)
        #expect(ranged.last == "replayed 1 of 1 matching dead letter(s)")

        let collector = RecordCollector()
        var configuration = try kafka.testConfiguration(groupID: "replay-check")
        try configuration.set("auto.offset.reset", "earliest")
        let consumer = try KafkaConsumer(configuration: configuration, delegate: collector, logger: logger)
        try await consumer.subscribe(["orders", "orders.manual"])
        let records = try await collector.log.wait(for: "the replayed records", timeout: .seconds(30)) { $0.records.count >= 3 }.records
        try await Task.sleep(for: .milliseconds(500))
        try await consumer.close()
        let replayed = collector.log.value.records
        #expect(replayed.count == 3, "each dead letter replayed once: \(records.count)")
        let inOrders = replayed.filter { $0.topic == "orders" }
        #expect(Set(inOrders.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }) == ["five", "twelve"])
        for record in inOrders {
            #expect(record.headers.map(\.name) == ["idempotency-key"], "Conveyor's headers removed, the idempotency key kept")
        }
        #expect(replayed.filter { $0.topic == "orders.manual" }.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } } == ["nine"])

        let bad = try ChildProcess(["dlq", "replay", "orders.dlq", "--where", "colour=red"] + bootstrap)
        #expect(try await bad.waitForExit() != 0)
        #expect(bad.standardError.contains("unknown filter 'colour'"))
    }
}
