import Configuration
import Conveyor
import Foundation
import Testing

@Suite("Runtime configuration")
struct RuntimeConfigurationTests {
    private func reader(yaml: String) async throws -> ConfigReader {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-\(UUID()).yml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return ConfigReader(provider: try await FileProvider<YAMLSnapshot>(filePath: .init(path)))
    }

    @Test("The example file in config/ is valid and gives the documented defaults")
    func exampleFile() async throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../config/conveyor.yml").standardizedFileURL.path
        let reader = ConfigReader(provider: try await FileProvider<YAMLSnapshot>(filePath: .init(path)))
        let configuration = try RuntimeConfiguration(reader: reader)
        #expect(configuration.bootstrapServers == "127.0.0.1:9092")
        #expect(configuration.concurrency == 64)
        #expect(configuration.commitInterval == .seconds(1))
        #expect(configuration.handlers.map(\.name) == ["inventory", "payments", "shipping", "order-stats"])
        #expect(configuration.handlers.first?.groupID == "conveyor.inventory")
        #expect(configuration.handlers.allSatisfy { $0.ordering == .key })
    }

    @Test("Values are read, with per-handler settings and librdkafka properties")
    func values() async throws {
        let configuration = try RuntimeConfiguration(reader: try await self.reader(yaml: """
            kafka:
              bootstrap_servers: "127.0.0.1:1234"
              session_timeout_ms: 6000
              assignment_strategy: range
              properties: ["fetch.wait.max.ms=50"]
            workers:
              concurrency: 8
            retry:
              max_attempts: 3
              backoff: fixed
              backoff_ms: 250
            dead_letter:
              delivery_timeout_ms: 2000
              flood_guard:
                window: 50
                max_share: 0.25
            crash:
              max: 3
              journal_directory: /var/lib/conveyor
            handlers:
              enabled: [a, b]
              a:
                idempotency:
                  key: header:order-id
                  required: true
                  ttl_ms: 60000
                  on_conflict: accept
              b:
                retry:
                  max_attempts: 7
                  backoff: exponential
                  max_backoff_ms: 5000
                retry_topics_ms: [1000, 60000]
                dead_letter_topic: b-failures
                group_id: custom
                topics: [x, y]
                ordering: none
                properties: ["max.poll.interval.ms=600000"]
            """))
        #expect(configuration.sessionTimeout == .seconds(6))
        #expect(configuration.assignmentStrategy == .range)
        #expect(configuration.kafkaProperties == ["fetch.wait.max.ms": "50"])
        #expect(configuration.concurrency == 8)
        let b = try #require(configuration.handlers.last)
        #expect(b.groupID == "custom")
        #expect(b.topics == ["x", "y"])
        #expect(b.ordering == Ordering.none)
        #expect(b.properties == ["max.poll.interval.ms": "600000"])
        #expect(configuration.retryPolicy == RetryPolicy(maxAttempts: 3, backoff: .fixed(.milliseconds(250))))
        #expect(
            configuration.retryPolicy(for: b)
                == RetryPolicy(maxAttempts: 7, backoff: .exponential(base: .milliseconds(250), max: .seconds(5), jitter: 0.2)),
            "the handler's own keys, the rest from retry.*"
        )
        #expect(configuration.retryPolicy(for: configuration.handlers[0]).maxAttempts == 3)
        #expect(b.retryTopicDelays == [.seconds(1), .seconds(60)])
        #expect(b.deadLetterTopic == "b-failures")
        #expect(configuration.deadLetterDeliveryTimeout == .seconds(2))
        #expect(configuration.floodGuardWindow == 50)
        #expect(configuration.floodGuardMaxShare == 0.25)
        #expect(configuration.crashMax == 3)
        #expect(configuration.journalDirectory == "/var/lib/conveyor")
        var idempotency = IdempotencySettings()
        idempotency.key = .header("order-id")
        idempotency.required = true
        idempotency.ttl = .seconds(60)
        idempotency.acceptsConflicts = true
        #expect(configuration.handlers[0].idempotency == idempotency)
        #expect(b.idempotency == nil, "off unless configured")
    }

    @Test("Keys left out keep their documented defaults, sub-second ones included")
    func defaults() async throws {
        let configuration = try RuntimeConfiguration(reader: try await self.reader(yaml: """
            kafka:
              bootstrap_servers: "127.0.0.1:1234"
            handlers:
              enabled: [a]
            """))
        let defaults = RuntimeConfiguration(bootstrapServers: "127.0.0.1:1234")
        #expect(configuration.retryPolicy.backoff == .exponential(base: .milliseconds(100), max: .seconds(30), jitter: 0.2))
        #expect(configuration.retryPolicy == defaults.retryPolicy)
        #expect(configuration.deadLetterDeliveryTimeout == defaults.deadLetterDeliveryTimeout)
        #expect(configuration.commitInterval == defaults.commitInterval)
        #expect(configuration.drainTimeout == defaults.drainTimeout)
        #expect(configuration.shutdownTimeout == defaults.shutdownTimeout)
        #expect(configuration.sessionTimeout == defaults.sessionTimeout)
        #expect(configuration.maxInFlightRecords == defaults.maxInFlightRecords)
        #expect(configuration.concurrency == defaults.concurrency)
    }

    @Test("Every problem is reported with its key path")
    func problems() async throws {
        let reader = try await self.reader(yaml: """
            kafka:
              properties: ["no.such.property=1", "novalue"]
              assignment_strategy: sticky
            workers:
              concurrency: lots
            commit:
              interval_ms: -5
            retry:
              backoff: sometimes
              jitter: 2
            dead_letter:
              flood_guard:
                max_share: half
            crash:
              max: 0
            idempotency:
              store: postgres://conveyor@127.0.0.1
            handlers:
              enabled: [a, a]
              a:
                idempotency:
                  key: body
                ordering: random
                retry_topics_ms: [soon]
                retry:
                  max_attempts: 0
            """)
        let problems = RuntimeConfiguration.problems(in: reader)
        let keys = Set(problems.map(\.key))
        #expect(keys == [
            "kafka.bootstrap_servers", "kafka.properties", "kafka.assignment_strategy", "workers.concurrency",
            "commit.interval_ms", "handlers.enabled", "handlers.a.ordering", "retry.backoff", "retry.jitter",
            "dead_letter.flood_guard.max_share", "crash.max", "handlers.a.retry_topics_ms", "handlers.a.retry.max_attempts",
            "idempotency.store", "handlers.a.idempotency.key",
        ])
        #expect(problems.contains { $0.key == "idempotency.store" && $0.message.contains("no database") })
        #expect(problems.contains { $0.message.contains("no.such.property") })
        #expect(problems.contains { $0.message.contains("'lots'") })
        let error = #expect(throws: ConveyorError.self) { try RuntimeConfiguration(reader: reader) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("workers.concurrency") == true)
    }
}
