import ConveyorTestKit
import RdKafka
import Synchronization
import Testing

@Suite("Producer")
struct ProducerTests {
    @Test("A full local queue is backpressure: enqueue throws queueFull, send waits for room")
    func queueFull() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("full", partitions: 1)
        var configuration = try kafka.testConfiguration()
        try configuration.set("queue.buffering.max.messages", "5")
        try configuration.set("linger.ms", "50")
        let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
        let delivered = AwaitableState(0)
        var refused: KafkaError?
        for index in 0..<6 {
            do {
                let message = KafkaProducerMessage(topic: "full", value: Array("r\(index)".utf8))
                try producer.enqueue(message) { result in
                    if case .success = result { delivered.update { $0 += 1 } }
                }
            } catch let error as KafkaError {
                refused = error
            }
        }
        #expect(refused?.code == .queueFull)
        #expect(refused?.isRetryable == true)
        try await delivered.wait(for: "the 5 queued records") { $0 == 5 }

        let reports = try await withThrowingTaskGroup(of: KafkaDeliveryReport.self) { group in
            for index in 0..<40 {
                group.addTask {
                    try await producer.send(KafkaProducerMessage(topic: "full", value: Array("s\(index)".utf8)))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(reports.map(\.offset)) == Set(5..<45))
        await producer.close()
    }

    @Test("Closing fails what was not delivered instead of dropping it silently")
    func closeFailsUndelivered() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("closing", partitions: 1)
        try kafka.setBrokerDown(1)
        let producer = try KafkaProducer(configuration: try kafka.testConfiguration(), logger: testLogger)
        let results = AwaitableState([Result<KafkaDeliveryReport, KafkaError>]())
        for index in 0..<3 {
            try producer.enqueue(KafkaProducerMessage(topic: "closing", value: Array("c\(index)".utf8))) { result in
                results.update { $0.append(result) }
            }
        }
        await producer.close(timeout: .milliseconds(200))
        let all = try await results.wait(for: "3 delivery reports") { $0.count == 3 }
        for result in all {
            #expect(throws: KafkaError.self) { try result.get() }
        }
        let error = #expect(throws: KafkaError.self) {
            try producer.enqueue(KafkaProducerMessage(topic: "closing", value: [])) { _ in }
        }
        #expect(error?.code == .closed)
    }
}
