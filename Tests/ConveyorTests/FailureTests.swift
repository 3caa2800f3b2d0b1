@testable import Conveyor
import ConveyorTestKit
import Foundation
import Logging
import MetricsTestKit
import RdKafka
import Testing


/// One call of a failure-test handler.
struct Call: Sendable {
    var handler: String
    var value: String
    var attempt: Int
    var at: ContinuousClock.Instant
    var succeeded: Bool
}

/// Every call the failure-test handlers saw, in this process.
let calls = AwaitableState([Call]())

/// Values the failure-test handlers treat specially; everything else succeeds.
enum Behaviour {
    /// Always throws a retryable error.
    static let poison = "poison"
    /// Throws a retryable error on its first attempt only.
    static let flaky = "flaky"
    /// Throws ``NonRetryableError``.
    static let refused = "refused"
    /// Throws ``SkipRecord``.
    static let skip = "skip"
    /// Throws a retryable error on its first two attempts.
    static let twice = "twice"
}

struct TransientFailure: Error, CustomStringConvertible {
    var description: String { "the service is unavailable" }
}

/// A handler that records its calls and fails as ``Behaviour`` says.
protocol ScriptedHandler: Handler {}

extension ScriptedHandler {
    var topics: [String] { ["unused"] }

    func handle(_ record: Record, context: HandlerContext) async throws {
        let value = record.value.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let failure: (any Error)? =
            switch value {
            case Behaviour.poison: TransientFailure()
            case Behaviour.flaky where context.attempt == 1: TransientFailure()
            case Behaviour.twice where context.attempt <= 2: TransientFailure()
            case Behaviour.refused: NonRetryableError("order \(value) has no customer")
            case Behaviour.skip: SkipRecord("test record")
            default: nil
            }
        calls.update {
            $0.append(Call(handler: Self.name, value: value, attempt: context.attempt, at: .now, succeeded: failure == nil))
        }
        if let failure {
            throw failure
        }
    }
}

struct ScriptedA: ScriptedHandler { static let name = "scripted-a" }
struct ScriptedB: ScriptedHandler { static let name = "scripted-b" }
struct ScriptedC: ScriptedHandler { static let name = "scripted-c" }
struct ScriptedD: ScriptedHandler { static let name = "scripted-d" }
struct ScriptedE: ScriptedHandler { static let name = "scripted-e" }
struct ScriptedF: ScriptedHandler { static let name = "scripted-f" }

private let registry = try! HandlerRegistry([
    ScriptedA.self, ScriptedB.self, ScriptedC.self, ScriptedD.self, ScriptedE.self, ScriptedF.self,
])

private func configuration(
    _ kafka: EmbeddedKafka, topic: String, handler: String, policy: RetryPolicy
) -> RuntimeConfiguration {
    var configuration = runtimeConfiguration(kafka, topic: topic, handlers: [handler])
    configuration.retryPolicy = policy
    return configuration
}


@Suite("Failure handling")
struct FailureTests {
    @Test("A poison record: exactly max attempts, one dead letter byte-equal with its headers, the partition moves on")
    func poison() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "poison-orders"
        try kafka.createTopic(topic, partitions: 2)
        try kafka.createTopic(topic + ".dlq", partitions: 1)
        let originalHeaders = [KafkaHeader(name: "idempotency-key", string: "order-7"), KafkaHeader(name: "empty", value: nil)]
        var messages = (0..<200).map {
            KafkaProducerMessage(topic: topic, partition: Int32($0 % 2), key: Array("k\($0)".utf8), value: Array("v\($0)".utf8))
        }
        messages.insert(
            KafkaProducerMessage(
                topic: topic, partition: 0, key: [0, 1, 2], value: Array(Behaviour.poison.utf8), headers: originalHeaders
            ),
            at: 50
        )
        try await produce(messages, to: kafka)

        let metrics = TestMetrics()
        let supervisor = try Supervisor(
            configuration: configuration(
                kafka, topic: topic, handler: ScriptedA.name, policy: RetryPolicy(maxAttempts: 3, backoff: .fixed(.milliseconds(20)))
            ),
            registry: registry, logger: quietLogger, metrics: metrics
        )
        let run = Task { try await supervisor.run(signals: []) }
        let (reader, dead) = try await collect(topic + ".dlq", on: kafka)
        let letters = try await dead.log.wait(for: "the dead letter", timeout: .seconds(60)) { !$0.records.isEmpty }.records
        let handled = try await calls.wait(for: "200 records", timeout: .seconds(60)) { calls in
            calls.filter { $0.handler == ScriptedA.name && $0.succeeded }.count >= 200
        }
        // The committed offset of partition 0 passes the poison record.
        let admin = try KafkaAdmin(configuration: try kafka.testConfiguration(), logger: quietLogger)
        var lag: [TopicPartition: Int64] = [:]
        await eventually {
            lag = (try? await admin.lag(group: "\(topic).\(ScriptedA.name)", topic: topic)) ?? [:]
            return !lag.isEmpty && lag.values.allSatisfy { $0 == 0 }
        }
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        try await reader.close()

        let poisonCalls = handled.filter { $0.handler == ScriptedA.name && $0.value == Behaviour.poison }
        #expect(poisonCalls.map(\.attempt) == [1, 2, 3], "exactly three attempts")
        #expect(lag.values.allSatisfy { $0 == 0 }, "every partition committed to its end: \(lag)")
        try #require(letters.count == 1)
        let letter = letters[0]
        #expect(letter.key.map(Array.init) == [0, 1, 2])
        #expect(letter.value.map(Array.init) == Array(Behaviour.poison.utf8))
        #expect(Array(letter.headers.prefix(2)) == originalHeaders, "original headers first, byte for byte")
        #expect(header(letter, DeadLetter.Header.originalTopic) == topic)
        #expect(header(letter, DeadLetter.Header.originalPartition) == "0")
        #expect(header(letter, DeadLetter.Header.originalOffset) == "25")
        #expect(header(letter, DeadLetter.Header.originalTimestamp) != nil)
        #expect(header(letter, DeadLetter.Header.handler) == ScriptedA.name)
        #expect(header(letter, DeadLetter.Header.group) == "\(topic).\(ScriptedA.name)")
        #expect(header(letter, DeadLetter.Header.attempts) == "3")
        #expect(header(letter, DeadLetter.Header.reason) == "attempts-exhausted")
        #expect(header(letter, DeadLetter.Header.errorType)?.hasSuffix("TransientFailure") == true)
        #expect(header(letter, DeadLetter.Header.errorMessage) == "the service is unavailable")
        let first = try #require(header(letter, DeadLetter.Header.firstFailure).flatMap(Int64.init))
        let last = try #require(header(letter, DeadLetter.Header.lastFailure).flatMap(Int64.init))
        #expect(first <= last && last - first >= 40, "two backoffs of 20 ms between first and last failure")

        let dimensions = [("handler", ScriptedA.name), ("topic", topic)]
        #expect(try metrics.expectCounter("conveyor_failures_total", dimensions).totalValue == 3)
        #expect(try metrics.expectCounter("conveyor_retries_total", dimensions).totalValue == 2)
        #expect(
            try metrics.expectCounter("conveyor_dead_letters_total", dimensions + [("reason", "attempts-exhausted")])
                .totalValue == 1
        )
        #expect(try metrics.expectCounter("conveyor_attempts_total", dimensions).totalValue == 203)
        let statistics = try #require(supervisor.statistics.first)
        #expect(statistics.deadLettered == 1)
        #expect(statistics.handled == 200)
    }

    @Test("A record that succeeds on attempt 2: one effect, no dead letter; other keys do not wait, its key does")
    func retryThenSuccess() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "flaky-orders"
        try kafka.createTopic(topic, partitions: 1)
        try kafka.createTopic(topic + ".dlq", partitions: 1)
        let concurrency = RuntimeConfiguration(bootstrapServers: "unused").concurrency
        let flakyKey = Array("flaky-key".utf8)
        let flakyLane = LaneAssignment.lane(ofKey: flakyKey, lanes: concurrency)
        // 400 other keys after the flaky record in the same partition, some of them on its lane; then a second
        // record of the flaky key.
        let others = (0..<400).map { Array("other-\($0)".utf8) }
        #expect(others.contains { LaneAssignment.lane(ofKey: $0, lanes: concurrency) == flakyLane }, "keys share its lane")
        let messages = [KafkaProducerMessage(topic: topic, key: flakyKey, value: Array(Behaviour.flaky.utf8))]
            + others.enumerated().map { KafkaProducerMessage(topic: topic, key: $1, value: Array("o\($0)".utf8)) }
            + [KafkaProducerMessage(topic: topic, key: flakyKey, value: Array("after-flaky".utf8))]
        try await produce(messages, to: kafka)

        let backoff = Duration.seconds(2)
        let supervisor = try Supervisor(
            configuration: configuration(kafka, topic: topic, handler: ScriptedB.name, policy: RetryPolicy(maxAttempts: 3, backoff: .fixed(backoff))),
            registry: registry, logger: quietLogger
        )
        let run = Task { try await supervisor.run(signals: []) }
        let seen = try await calls.wait(for: "every record", timeout: .seconds(60)) { calls in
            calls.filter { $0.handler == ScriptedB.name && $0.succeeded }.count >= others.count + 2
        }.filter { $0.handler == ScriptedB.name }
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)

        let flaky = seen.filter { $0.value == Behaviour.flaky }
        #expect(flaky.map(\.attempt) == [1, 2], "failed once, then succeeded: one effect")
        let retriedAt = try #require(flaky.last?.at)
        let othersDone = try #require(seen.filter { $0.value.hasPrefix("o") }.map(\.at).max())
        #expect(othersDone < retriedAt, "every other key, on its lane or not, finished during the 2 s backoff")
        let after = try #require(seen.first { $0.value == "after-flaky" })
        #expect(after.at > retriedAt, "the flaky key's next record waited for it: per-key order kept")
        let statistics = try #require(supervisor.statistics.first)
        #expect(statistics.deadLettered == 0)
        #expect(statistics.failedAttempts == 1)
    }

    @Test("Classification: non-retryable errors and undecodable payloads go straight to the DLQ; skips are counted")
    func classification() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "classified-orders"
        try kafka.createTopic(topic, partitions: 1)
        try kafka.createTopic(topic + ".dead", partitions: 1)
        try await produce(
            [Behaviour.refused, Behaviour.skip, "fine"].map { KafkaProducerMessage(topic: topic, value: Array($0.utf8)) },
            to: kafka
        )
        var configuration = configuration(kafka, topic: topic, handler: ScriptedC.name, policy: RetryPolicy(maxAttempts: 5, backoff: .none))
        configuration.handlers[0].deadLetterTopic = topic + ".dead"
        let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        let run = Task { try await supervisor.run(signals: []) }
        let (reader, dead) = try await collect(topic + ".dead", on: kafka)
        let letters = try await dead.log.wait(for: "the dead letter", timeout: .seconds(60)) { !$0.records.isEmpty }.records
        _ = try await calls.wait(for: "the good record", timeout: .seconds(30)) { calls in
            calls.contains { $0.handler == ScriptedC.name && $0.value == "fine" }
        }
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        try await reader.close()

        let seen = calls.value.filter { $0.handler == ScriptedC.name }
        #expect(seen.filter { $0.value == Behaviour.refused }.count == 1, "not retried")
        #expect(seen.filter { $0.value == Behaviour.skip }.count == 1, "not retried")
        #expect(letters.count == 1)
        #expect(letters.first.flatMap { header($0, DeadLetter.Header.reason) } == "non-retryable")
        #expect(letters.first.flatMap { header($0, DeadLetter.Header.errorMessage) } == "order refused has no customer")
        let statistics = try #require(supervisor.statistics.first)
        #expect(statistics.skipped == 1)
        #expect(statistics.deadLettered == 1)
        #expect(ScriptedC().classify(ConveyorError(.decodeFailed, "not JSON")) == .deadLetter)
        #expect(ScriptedC().classify(TransientFailure()) == .retry)
    }

    @Test("Retry topics: a record failing twice passes through two retry topics, held until due, handled once")
    func retryTopics() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "retried-orders"
        try kafka.createTopic(topic, partitions: 2)
        for name in [topic + ".retry.1s", topic + ".retry.1500ms", topic + ".dlq"] {
            try kafka.createTopic(name, partitions: 2)
        }
        try await produce(
            (0..<50).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array(($0 == 20 ? Behaviour.twice : "r\($0)").utf8)) },
            to: kafka
        )
        var configuration = configuration(kafka, topic: topic, handler: ScriptedF.name, policy: RetryPolicy(maxAttempts: 1, backoff: .none))
        configuration.handlers[0].retryTopicDelays = [.seconds(1), .milliseconds(1500)]
        let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        let run = Task { try await supervisor.run(signals: []) }
        let seen = try await calls.wait(for: "the record's third attempt", timeout: .seconds(60)) { calls in
            calls.contains { $0.handler == ScriptedF.name && $0.value == Behaviour.twice && $0.succeeded }
                && calls.filter { $0.handler == ScriptedF.name && $0.succeeded }.count >= 50
        }.filter { $0.handler == ScriptedF.name }
        let statistics = try #require(supervisor.statistics.first)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)

        let twice = seen.filter { $0.value == Behaviour.twice }
        #expect(twice.map(\.attempt) == [1, 2, 3])
        #expect(twice.filter(\.succeeded).count == 1, "handled once")
        if twice.count == 3 {
            #expect(twice[1].at - twice[0].at >= .milliseconds(950), "held for the first retry topic's second")
            #expect(twice[2].at - twice[1].at >= .milliseconds(1_450), "held for the second's 1.5 s")
        }
        #expect(Set(seen.filter(\.succeeded).map(\.value)).count == 50, "nothing lost")
        #expect(statistics.sentToRetryTopics == 2)
        #expect(statistics.deadLettered == 0)
    }

    @Test("DLQ leader down: nothing committed past the record, nothing lost; when it returns, the dead letter appears")
    func deadLetterUnavailable() async throws {
        let kafka = try EmbeddedKafka(brokers: 2)
        let topic = "outage-orders"
        try kafka.createTopic(topic, partitions: 1)
        try kafka.createTopic(topic + ".dlq", partitions: 1)
        try kafka.setPartitionLeader(topic: topic, partition: 0, broker: 1)
        try kafka.setGroupCoordinator(group: "\(topic).\(ScriptedD.name)", broker: 1)
        try kafka.setPartitionLeader(topic: topic + ".dlq", partition: 0, broker: 2)
        try await produce(
            (0..<100).map { KafkaProducerMessage(topic: topic, value: Array(($0 == 10 ? Behaviour.poison : "v\($0)").utf8)) },
            to: kafka
        )
        try kafka.setBrokerDown(2)

        var configuration = configuration(kafka, topic: topic, handler: ScriptedD.name, policy: RetryPolicy(maxAttempts: 2, backoff: .none))
        configuration.deadLetterDeliveryTimeout = .milliseconds(500)
        let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        let run = Task { try await supervisor.run(signals: []) }
        // The records are keyless, so they are ordered by partition: the ten before the poison record are handled,
        // then the partition waits for the dead letter.
        _ = try await calls.wait(for: "the records before the poison one", timeout: .seconds(60)) { calls in
            calls.filter { $0.handler == ScriptedD.name && $0.succeeded }.count >= 10
        }
        // Wait until a dead-letter write failed: the record is held.
        let blocked = await eventually { supervisor.statistics.first?.isDeadLetterBlocked == true }
        #expect(blocked, "the health state says so")
        await eventually(timeout: .seconds(10)) { supervisor.statistics.first?.partitionsPausedForWrites.isEmpty == false }
        #expect(supervisor.statistics.first?.partitionsPausedForWrites == [TopicPartition(topic, 0)], "the partition pauses")
        try await Task.sleep(for: .milliseconds(600))
        let group = "\(topic).\(ScriptedD.name)"
        let partition = TopicPartition(topic, 0)
        let held = try await committedOffset(of: group, partition, on: kafka)
        #expect(held.map { $0 <= 10 } ?? true, "not committed past the record: \(String(describing: held))")

        #expect(calls.value.filter { $0.handler == ScriptedD.name && $0.succeeded }.count == 10, "the partition waits")

        try kafka.setBrokerUp(2)
        let (reader, dead) = try await collect(topic + ".dlq", on: kafka)
        let letters = try await dead.log.wait(for: "the dead letter", timeout: .seconds(60)) { !$0.records.isEmpty }.records
        var committed: Int64?
        await eventually {
            committed = try? await committedOffset(of: group, partition, on: kafka)
            return committed == 100
        }
        let handled = try await calls.wait(for: "99 good records", timeout: .seconds(60)) { calls in
            calls.filter { $0.handler == ScriptedD.name && $0.succeeded }.count >= 99
        }.filter { $0.handler == ScriptedD.name && $0.succeeded }
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        try await reader.close()
        #expect(Set(handled.map(\.value)) == Set((0..<100).filter { $0 != 10 }.map { "v\($0)" }), "nothing lost")
        #expect(letters.count == 1)
        #expect(letters.first.flatMap { header($0, DeadLetter.Header.originalOffset) } == "10")
        #expect(committed == 100, "the partition moved on")
        #expect(supervisor.statistics.first?.isDeadLetterBlocked == false)
        #expect(supervisor.statistics.first?.partitionsPausedForWrites.isEmpty == true, "and resumed")
    }
}

@Suite("Flood guard")
struct FloodGuardTests {
    @Test("Trips once dead letters pass their share of the recent records, and stays tripped")
    func arithmetic() {
        var burst = FloodGuard(window: 10, maxShare: 0.5)
        var admitted = (0..<5).map { _ in burst.admitDeadLetter() }
        #expect(admitted.allSatisfy { $0 }, "five dead letters are not yet more than half a window")
        let sixth = burst.admitDeadLetter()
        #expect(!sixth, "a burst of dead letters with nothing else finished trips it")
        #expect(burst.isTripped)
        burst.finished(1_000)
        let afterTrip = burst.admitDeadLetter()
        #expect(!afterTrip, "stays tripped")

        var healthy = FloodGuard(window: 10, maxShare: 0.5)
        healthy.finished(100)
        admitted = (0..<50).map { _ in healthy.admitDeadLetter() }
        #expect(admitted.allSatisfy { $0 }, "50 dead letters among 100 records is not more than half")
        let fiftyFirst = healthy.admitDeadLetter()
        #expect(!fiftyFirst)

        var off = FloodGuard(window: 10, maxShare: 1)
        admitted = (0..<100).map { _ in off.admitDeadLetter() }
        #expect(admitted.allSatisfy { $0 }, "a share of 1 turns the guard off")
    }

    @Test("A bad deploy: the handler pauses instead of dead-lettering everything, and commits nothing past")
    func badDeploy() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "flooded-orders"
        try kafka.createTopic(topic, partitions: 1)
        try kafka.createTopic(topic + ".dlq", partitions: 1)
        try await produce(
            (0..<300).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array(Behaviour.poison.utf8)) },
            to: kafka
        )
        var configuration = configuration(kafka, topic: topic, handler: ScriptedE.name, policy: RetryPolicy(maxAttempts: 1, backoff: .none))
        configuration.floodGuardWindow = 20
        configuration.floodGuardMaxShare = 0.5
        let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        let run = Task { try await supervisor.run(signals: []) }
        let tripped = await eventually(timeout: .seconds(60)) { supervisor.statistics.first?.isPausedByFloodGuard == true }
        #expect(tripped)
        // The dead letters admitted before it tripped are delivered; then nothing more happens.
        #expect(await eventually { (supervisor.statistics.first?.deadLettered ?? 0) >= 10 })
        try await Task.sleep(for: .seconds(1))
        let statistics = try #require(supervisor.statistics.first)
        let committed = try await committedOffset(of: "\(topic).\(ScriptedE.name)", TopicPartition(topic, 0), on: kafka)
        await supervisor.triggerGracefulShutdown()
        _ = try await run.value
        #expect(statistics.deadLettered == 10, "stopped at half the window: \(statistics.deadLettered)")
        #expect(statistics.handled == 0)
        #expect((committed ?? 0) <= Int64(statistics.deadLettered), "nothing committed past the held records: \(String(describing: committed))")
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("Exponential backoff doubles up to its cap, with jitter only ever shortening it")
    func exponential() {
        var random = SystemRandomNumberGenerator()
        let policy = RetryPolicy(maxAttempts: 10, backoff: .exponential(base: .milliseconds(100), max: .seconds(1), jitter: 0))
        #expect((1...6).map { policy.delay(afterAttempt: $0, using: &random) }
            == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        let jittered = RetryPolicy(maxAttempts: 10, backoff: .exponential(base: .milliseconds(100), max: .seconds(1), jitter: 0.5))
        for _ in 0..<100 {
            let delay = jittered.delay(afterAttempt: 2, using: &random)
            #expect(delay >= .milliseconds(100) && delay <= .milliseconds(200))
        }
        #expect(RetryPolicy(maxAttempts: 0, backoff: .none).maxAttempts == 1, "at least one attempt")
        #expect(RetryPolicy(maxAttempts: 3, backoff: .fixed(.seconds(2))).delay(afterAttempt: 9, using: &random) == .seconds(2))
    }
}
