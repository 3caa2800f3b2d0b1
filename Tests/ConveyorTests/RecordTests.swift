@testable import Conveyor
import ConveyorTestKit
import RdKafka
import Testing

@Suite("Records")
struct RecordTests {
    private struct Order: Decodable {
        var id: String
        var total: Int
    }

    /// A real record, read back from the embedded broker.
    private func record(value: [UInt8]?) async throws -> Record {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("records", partitions: 1)
        let producer = try KafkaProducer(configuration: try kafka.testConfiguration(), logger: .init(label: "test"))
        _ = try await producer.send(KafkaProducerMessage(
            topic: "records", key: Array("k".utf8), value: value, headers: [KafkaHeader(name: "trace", string: "t-1")]
        ))
        await producer.close()
        let collector = RecordCollector()
        let consumer = try KafkaConsumer(
            configuration: try kafka.testConfiguration(groupID: "records"), delegate: collector, logger: .init(label: "test")
        )
        try await consumer.subscribe(["records"])
        let log = try await collector.log.wait(for: "the record") { !$0.records.isEmpty }
        try await consumer.close()
        return Record(log.records[0])
    }

    @Test("A payload that decodes gives the value, with headers and position")
    func decodes() async throws {
        let record = try await self.record(value: Array(#"{"id":"o-1","total":42}"#.utf8))
        let order = try record.decode(as: Order.self)
        #expect(order.id == "o-1" && order.total == 42)
        #expect(record.header("trace") == "t-1")
        #expect(record.position == "records[0]@0")
    }

    @Test("A payload that does not decode is a non-retryable error naming the type and the record",
          arguments: [Array("not json".utf8), Array(#"{"id":1}"#.utf8), nil])
    func badPayload(value: [UInt8]?) async throws {
        let record = try await self.record(value: value)
        let error = #expect(throws: ConveyorError.self) { try record.decode(as: Order.self) }
        #expect(error?.code == .decodeFailed)
        #expect(error?.isRetryable == false)
        #expect(error?.message.contains("records[0]@0") == true)
        #expect(error?.message.contains("Order") == true)
    }
}
