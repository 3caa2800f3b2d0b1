import Conveyor
import Foundation
import ConveyorTestKit
import Logging
import RdKafka
import Testing

@Suite("Runtime on the embedded broker")
struct RuntimeTests {
    @Test("20,000 keyed records with random delays: all handled, per-key order kept, everything committed")
    func keyedRecords() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "keyed"
        try kafka.createTopic(topic, partitions: 8)
        let messages = (0..<20_000).map { index in
            KafkaProducerMessage(topic: topic, key: Array("customer-\(index % 500)".utf8), value: Array("\(index)".utf8))
        }
        try await produce(messages, to: kafka)

        let supervisor = try Supervisor(
            configuration: runtimeConfiguration(kafka, topic: topic, handlers: [InventoryLedger.name]),
            registry: ledgerRegistry,
            logger: quietLogger
        )
        let run = Task { try await supervisor.run(signals: []) }
        let entries = try await ledger.wait(for: "20,000 records", timeout: .seconds(60)) {
            $0.count(topic: topic) >= 20_000
        }.entries(topic: topic)
        await supervisor.triggerGracefulShutdown()
        let report = try await run.value
        #expect(report.isClean)

        #expect(entries.count == 20_000)
        #expect(Set(entries.map(\.value)) == Set((0..<20_000).map { "\($0)" }))
        // Per key, records were handled in production order (the values count up).
        var lastByKey: [String: Int] = [:]
        for entry in entries {
            let value = Int(entry.value!)!
            if let last = lastByKey[entry.key!] {
                #expect(value > last, "key \(entry.key!): \(value) after \(last)")
            }
            lastByKey[entry.key!] = value
        }
        let admin = try KafkaAdmin(configuration: try kafka.testConfiguration(), logger: quietLogger)
        let lag = try await admin.lag(group: "\(topic).\(InventoryLedger.name)", topic: topic)
        #expect(lag.values.allSatisfy { $0 == 0 }, "committed offsets equal the end offsets: \(lag)")
    }

    @Test("Publish/subscribe: three handlers on one topic each see every record")
    func publishSubscribe() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "fan-out"
        try kafka.createTopic(topic, partitions: 4)
        try await produce(
            (0..<1_000).map { KafkaProducerMessage(topic: topic, key: Array("k\($0 % 10)".utf8), value: Array("\($0)".utf8)) },
            to: kafka
        )
        let names = [InventoryLedger.name, PaymentsLedger.name, ShippingLedger.name]
        let supervisor = try Supervisor(
            configuration: runtimeConfiguration(kafka, topic: topic, handlers: names), registry: ledgerRegistry, logger: quietLogger
        )
        let run = Task { try await supervisor.run(signals: []) }
        let entries = try await ledger.wait(for: "1,000 records per handler", timeout: .seconds(60)) { ledger in
            names.allSatisfy { ledger.count(topic: topic, handler: $0) >= 1_000 }
        }.entries(topic: topic)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        for name in names {
            let values = entries.filter { $0.handler == name }.compactMap(\.value)
            #expect(values.count == 1_000)
            #expect(Set(values).count == 1_000, "\(name) saw every record once")
        }
    }

    @Test("An unknown handler name is refused, listing the registered ones")
    func unknownHandler() throws {
        let configuration = RuntimeConfiguration(
            bootstrapServers: "127.0.0.1:1", handlers: [RuntimeConfiguration.HandlerSettings(name: "nope")]
        )
        let error = #expect(throws: ConveyorError.self) {
            try Supervisor(configuration: configuration, registry: ledgerRegistry, logger: quietLogger)
        }
        #expect(error?.code == .unknownHandler)
        #expect(error?.message.contains("nope") == true)
        #expect(error?.message.contains(InventoryLedger.name) == true)
    }
}
