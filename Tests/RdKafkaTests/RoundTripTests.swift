import ConveyorTestKit
import RdKafka
import Testing

@Suite("Round trip through the embedded broker")
struct RoundTripTests {
    @Test("10,000 records keep keys, values and headers, in order per partition, none missing")
    func roundTrip() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("round-trip", partitions: 4)
        let binary: [UInt8] = (0..<64).map { UInt8(($0 * 37) % 256) } + [0, 0, 255]
        let messages = (0..<10_000).map { index in
            let value: [UInt8]? =
                switch index % 5 {
                case 0: []
                case 1: binary + Array("\(index)".utf8)
                case 2: nil
                default: Array("value-\(index)".utf8)
                }
            let headers: [KafkaHeader] =
                switch index % 3 {
                case 0: []
                case 1: [
                    KafkaHeader(name: "trace", string: "t-\(index)"),
                    KafkaHeader(name: "empty", value: []),
                    KafkaHeader(name: "null", value: nil),
                ]
                default: [KafkaHeader(name: "dup", string: "a"), KafkaHeader(name: "dup", value: binary)]
                }
            return KafkaProducerMessage(
                topic: "round-trip",
                partition: Int32(index % 4),
                key: index % 10 == 0 ? nil : Array("key-\(index)".utf8),
                value: value,
                headers: headers
            )
        }
        let reports = try await produceAll(messages, to: kafka)
        var sent: [TopicPartitionOffset: KafkaProducerMessage] = [:]
        for (report, message) in zip(reports, messages) {
            sent[TopicPartitionOffset(report.topic, report.partition, offset: report.offset)] = message
        }
        #expect(sent.count == 10_000)

        let collector = RecordCollector()
        let consumer = try await startConsumer(on: kafka, group: "round-trip", topics: ["round-trip"], collector: collector)
        let log = try await collector.log.wait(for: "10,000 records") { $0.records.count >= 10_000 }
        try await consumer.close()

        #expect(log.records.count == 10_000)
        for partition in (0..<4).map({ TopicPartition("round-trip", $0) }) {
            let offsets = log.records(of: partition).map(\.offset)
            #expect(offsets == Array(0..<2_500), "partition \(partition) in order, none missing")
        }
        for record in log.records {
            let position = TopicPartitionOffset(record.topic, record.partition, offset: record.offset)
            let original = try #require(sent[position])
            #expect(record.key.map(Array.init) == original.key)
            #expect(record.value.map(Array.init) == original.value)
            #expect(record.headers == original.headers)
            #expect(record.timestamp != nil)
        }
    }

    @Test("A consumer that does not read headers gets the same keys and values, without headers")
    func withoutHeaders() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("no-headers", partitions: 1)
        let messages = (0..<100).map { index in
            KafkaProducerMessage(
                topic: "no-headers", key: Array("k\(index)".utf8), value: Array("v\(index)".utf8),
                headers: [KafkaHeader(name: "h", string: "\(index)")]
            )
        }
        try await produceAll(messages, to: kafka)
        let collector = RecordCollector()
        let consumer = try await startConsumer(
            on: kafka, group: "no-headers", topics: ["no-headers"], collector: collector
        ) { $0.readsHeaders = false }
        let log = try await collector.log.wait(for: "100 records") { $0.records.count >= 100 }
        try await consumer.close()
        #expect(log.records.map(\.text) == (0..<100).map { "v\($0)" })
        #expect(log.records.map { $0.key.map { String(decoding: $0, as: UTF8.self) } } == (0..<100).map { "k\($0)" })
        #expect(log.records.allSatisfy { $0.headers.isEmpty })
    }
}
