import ConveyorTestKit
import RdKafka
import Testing

@Suite("Pause and resume")
struct PauseResumeTests {
    @Test("A paused partition delivers nothing until resumed; resuming an unpaused partition changes nothing")
    func pausedPartitionWaits() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("pause", partitions: 2)
        let paused = TopicPartition("pause", 0)
        let running = TopicPartition("pause", 1)
        let collector = RecordCollector()
        let consumer = try await startConsumer(on: kafka, group: "pause", topics: ["pause"], collector: collector)
        try await collector.log.wait(for: "both partitions") { $0.assignment == [paused, running] }

        let state = try await consumer.perform { control in
            try control.pause([paused])
            try control.pause([paused])
            try control.resume([running])
            return control.paused
        }
        #expect(state == [paused])

        // Records of the paused partition are written first, so they would arrive first if it were not paused.
        try await produceAll(numberedMessages(100, topic: "pause", partitions: 1, prefix: "paused"), to: kafka)
        let toRunning = (0..<100).map {
            KafkaProducerMessage(topic: "pause", partition: 1, value: Array("running-\($0)".utf8))
        }
        try await produceAll(toRunning, to: kafka)
        let whilePaused = try await collector.log.wait(for: "the running partition") {
            $0.records(of: running).count >= 100
        }
        #expect(whilePaused.records(of: paused).isEmpty)

        let afterResume = try await consumer.perform { control in
            try control.resume([paused])
            return control.paused
        }
        #expect(afterResume.isEmpty)
        let log = try await collector.log.wait(for: "the paused partition's records") {
            $0.records(of: paused).count >= 100
        }
        try await consumer.close()
        #expect(log.records(of: paused).map(\.offset) == Array(0..<100))
        #expect(log.records(of: running).map(\.offset) == Array(0..<100))
    }

    @Test("Pausing a partition that is not assigned is refused")
    func pauseForeignPartition() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("pause-foreign", partitions: 1)
        let collector = RecordCollector()
        let consumer = try await startConsumer(
            on: kafka, group: "pause-foreign", topics: ["pause-foreign"], collector: collector
        )
        try await collector.log.wait(for: "assignment") { !$0.assignment.isEmpty }
        let error = await #expect(throws: KafkaError.self) {
            try await consumer.perform { try $0.pause([TopicPartition("elsewhere", 3)]) }
        }
        #expect(error?.code == .partitionNotAssigned)
        #expect(error?.message.contains("elsewhere[3]") == true)
        try await consumer.close()
    }
}
