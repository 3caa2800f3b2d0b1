import ConveyorTestKit
import RdKafka
import Testing

@Suite("Faults")
struct FaultTests {
    @Test("The leader of a partition goes down and comes back: nothing lost, no crash")
    func leaderDownAndUp() async throws {
        let kafka = try EmbeddedKafka(brokers: 3)
        try kafka.createTopic("faults", partitions: 2, replicationFactor: 3)
        try kafka.setPartitionLeader(topic: "faults", partition: 0, broker: 2)
        try kafka.setPartitionLeader(topic: "faults", partition: 1, broker: 3)
        try kafka.setGroupCoordinator(group: "faults", broker: 1)
        let down = TopicPartition("faults", 0)
        let up = TopicPartition("faults", 1)

        let collector = RecordCollector()
        let consumer = try await startConsumer(on: kafka, group: "faults", topics: ["faults"], collector: collector)
        try await produceAll(numberedMessages(200, topic: "faults", partitions: 2, prefix: "before"), to: kafka)
        try await collector.log.wait(for: "the first 200 records") { $0.records.count >= 200 }

        try kafka.setBrokerDown(2)
        let during = Task {
            try await produceAll(numberedMessages(200, topic: "faults", partitions: 2, prefix: "during"), to: kafka)
        }
        let whileDown = try await collector.log.wait(for: "the partition whose leader is up") {
            $0.records(of: up).count >= 200
        }
        #expect(whileDown.records(of: down).count == 100)

        try kafka.setBrokerUp(2)
        #expect(try await during.value.count == 200)
        let log = try await collector.log.wait(for: "all 400 records") { Set($0.records.compactMap(\.text)).count >= 400 }
        try await consumer.close()
        let expected = Set((0..<200).flatMap { ["before-\($0)", "during-\($0)"] })
        #expect(Set(log.records.compactMap(\.text)) == expected)
    }

    @Test("Injected request errors and a slow broker are survived")
    func injectedProduceErrors() async throws {
        let kafka = try EmbeddedKafka()
        try kafka.createTopic("injected", partitions: 1)
        try kafka.pushRequestErrors(.produce, [.notLeaderForPartition, .requestTimedOut])
        try kafka.setRoundTripTime(broker: 1, .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        let reports = try await produceAll(numberedMessages(10, topic: "injected", partitions: 1), to: kafka)
        #expect(clock.now - start >= .milliseconds(300), "the round-trip time was applied")
        #expect(reports.map(\.offset).sorted() == Array(0..<10))
        #expect(throws: KafkaError.self) { try kafka.pushRequestErrors(.produce, [.other]) }
    }

    @Test("Unreachable bootstrap servers fail within the connect timeout, naming them and why", arguments: [
        ("127.0.0.1:1", "Connection refused"), ("no-such-host.invalid:9092", "resolve"),
    ])
    func unreachableBootstrap(servers: String, reason: String) async throws {
        var configuration = try KafkaConfiguration(bootstrapServers: servers, groupID: "nowhere")
        configuration.connectTimeout = .seconds(2)
        let consumer = try KafkaConsumer(configuration: configuration, delegate: RecordCollector(), logger: testLogger)
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: KafkaError.self) { try await consumer.subscribe(["anything"]) }
        #expect(clock.now - start < .seconds(8))
        #expect(error?.code == .brokersUnreachable)
        #expect(error?.message.contains(servers) == true)
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.isRetryable == true)
        try await consumer.close()

        let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
        let producerError = await #expect(throws: KafkaError.self) { try await producer.checkConnectivity() }
        #expect(producerError?.code == .brokersUnreachable)
        await producer.close(timeout: .zero)
    }

    @Test("Embedded cluster arguments are checked")
    func embeddedArguments() throws {
        #expect(throws: KafkaError.self) { try EmbeddedKafka(brokers: 0) }
        let kafka = try EmbeddedKafka()
        #expect(throws: KafkaError.self) { try kafka.setBrokerDown(9) }
        #expect(throws: KafkaError.self) { try kafka.createTopic("bad", partitions: 0) }
        #expect(throws: KafkaError.self) { try kafka.createTopic("replicas", partitions: 1, replicationFactor: 2) }
    }
}
