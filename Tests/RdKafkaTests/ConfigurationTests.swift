import ConveyorTestKit
import RdKafka
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    @Test("An unknown property is rejected, naming it")
    func unknownProperty() throws {
        let error = #expect(throws: KafkaError.self) {
            try KafkaConfiguration(bootstrapServers: "127.0.0.1:9092", properties: ["no.such.property": "1"])
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("no.such.property") == true)
    }

    @Test("A bad value is rejected with librdkafka's message, naming the property")
    func badValue() throws {
        var configuration = try KafkaConfiguration(bootstrapServers: "127.0.0.1:9092")
        let error = #expect(throws: KafkaError.self) { try configuration.set("session.timeout.ms", "soon") }
        #expect(error?.message.hasPrefix("session.timeout.ms:") == true)
        #expect(error?.message.contains("Invalid value") == true)
        #expect(configuration.properties["session.timeout.ms"] == nil)
    }

    @Test("A consumer without a group id is refused, naming group.id")
    func missingGroupID() throws {
        let configuration = try KafkaConfiguration(bootstrapServers: "127.0.0.1:9092")
        let error = #expect(throws: KafkaError.self) {
            try KafkaConsumer(configuration: configuration, delegate: RecordCollector(), logger: testLogger)
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("group.id") == true)
    }

    @Test("Automatic offset storage cannot be switched on")
    func automaticOffsetStore() throws {
        let configuration = try KafkaConfiguration(
            bootstrapServers: "127.0.0.1:9092", groupID: "g", properties: ["enable.auto.offset.store": "true"]
        )
        let error = #expect(throws: KafkaError.self) {
            try KafkaConsumer(configuration: configuration, delegate: RecordCollector(), logger: testLogger)
        }
        #expect(error?.message.contains("enable.auto.offset.store") == true)
    }

    @Test("Empty bootstrap servers are refused")
    func emptyBootstrap() throws {
        let configuration = try KafkaConfiguration(bootstrapServers: " ")
        let error = #expect(throws: KafkaError.self) { try KafkaProducer(configuration: configuration, logger: testLogger) }
        #expect(error?.message.contains("bootstrap.servers") == true)
    }

    @Test("Values librdkafka only checks at client creation are reported as configuration errors")
    func inconsistentValues() throws {
        var configuration = try KafkaConfiguration(bootstrapServers: "127.0.0.1:9092", groupID: "g")
        try configuration.set("enable.idempotence", "true")
        try configuration.set("acks", "1")
        let error = #expect(throws: KafkaError.self) { try KafkaProducer(configuration: configuration, logger: testLogger) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("acks") == true)
    }
}
