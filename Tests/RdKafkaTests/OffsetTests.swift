import ConveyorTestKit
import RdKafka
import Testing

@Suite("Offsets")
struct OffsetTests {
    @Test("After a commit of half, close and restart, consumption resumes exactly after the committed offset")
    func resumeAfterCommit() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("resume", partitions: 1)
        try await produceAll(numberedMessages(1_000, topic: "resume", partitions: 1), to: kafka)
        let partition = TopicPartition("resume", 0)

        let first = RecordCollector(storesOffsets: false)
        let consumerA = try await startConsumer(on: kafka, group: "resume", topics: ["resume"], collector: first)
        try await first.log.wait(for: "500 records") { $0.records.count >= 500 }
        try await consumerA.perform { control in
            try control.store([TopicPartitionOffset(partition, offset: 500)])
            try control.commit()
        }
        try await consumerA.close()

        let admin = try KafkaAdmin(configuration: try kafka.testConfiguration(), logger: testLogger)
        #expect(try await admin.committedOffsets(group: "resume", partitions: [partition])[partition] == 500)
        #expect(try await admin.lag(group: "resume", topic: "resume") == [partition: 500])

        let second = RecordCollector()
        let consumerB = try await startConsumer(on: kafka, group: "resume", topics: ["resume"], collector: second)
        let log = try await second.log.wait(for: "the other 500 records") { $0.records.count >= 500 }
        try await consumerB.close()
        #expect(log.records.map(\.offset) == Array(500..<1_000))
        #expect(log.records.first?.text == "value-500")
    }

    @Test("Nothing is committed that was not stored")
    func nothingCommittedUnlessStored() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("unstored", partitions: 1)
        try await produceAll(numberedMessages(100, topic: "unstored", partitions: 1), to: kafka)
        let collector = RecordCollector(storesOffsets: false)
        let consumer = try await startConsumer(on: kafka, group: "unstored", topics: ["unstored"], collector: collector)
        try await collector.log.wait(for: "100 records") { $0.records.count >= 100 }
        try await consumer.commit()
        try await consumer.close()
        let admin = try KafkaAdmin(configuration: try kafka.testConfiguration(), logger: testLogger)
        let partition = TopicPartition("unstored", 0)
        let committed = try await admin.committedOffsets(group: "unstored", partitions: [partition])
        #expect(committed[partition] == .some(nil))
    }
}
