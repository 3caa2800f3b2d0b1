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

    @Test("A hold reads no records while operations still run; it ends by itself or when told, and loses nothing")
    func holdReadsNothing() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("hold", partitions: 2)
        let collector = RecordCollector()
        let consumer = try await startConsumer(on: kafka, group: "hold", topics: ["hold"], collector: collector)
        try await collector.log.wait(for: "both partitions") { $0.assignment.count == 2 }

        // Held for longer than the test waits: the records stay in librdkafka's queue.
        try await consumer.perform { $0.hold(until: .now + .seconds(60)) }
        try await produceAll(numberedMessages(200, topic: "hold", partitions: 2, prefix: "held"), to: kafka)
        // An operation runs during the hold, and the fetchers get time to fill the prefetch queue.
        let assignment = try await consumer.perform { $0.assignment }
        #expect(assignment.count == 2)
        try await Task.sleep(for: .milliseconds(500))
        #expect(collector.log.value.records.isEmpty)

        try await consumer.perform { $0.endHold() }
        let afterEnd = try await collector.log.wait(for: "the held records") { $0.records.count >= 200 }
        #expect(afterEnd.expiredHolds == 0)

        // A short hold runs out by itself, tells the delegate, and reading goes on.
        try await consumer.perform { $0.hold(until: .now + .milliseconds(200)) }
        try await produceAll(numberedMessages(100, topic: "hold", partitions: 2, prefix: "later"), to: kafka)
        let log = try await collector.log.wait(for: "the records after a hold ran out") {
            $0.records.count >= 300 && $0.expiredHolds == 1
        }
        try await consumer.close()
        for partition in log.assignment {
            let offsets = log.records(of: partition).map(\.offset)
            #expect(offsets == Array(0..<Int64(offsets.count)))
        }
        #expect(log.records.count == 300)
    }
}
