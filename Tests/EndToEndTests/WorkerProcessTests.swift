import ConveyorTestKit
import Foundation
import Logging
import RdKafka
import Testing

/// One line of a ledger file: a record a worker handled.
private struct Handled: Hashable {
    var partition: Int32
    var offset: Int64
    var value: String
}

/// The records a worker wrote to its ledger so far.
private func ledger(_ path: String) -> [Handled] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count == 4, let partition = Int32(fields[1]), let offset = Int64(fields[2]) else { return nil }
        return Handled(partition: partition, offset: offset, value: String(fields[3]))
    }
}

/// A broker process with topic `ledger`, a configuration file for workers, and helpers around them.
final class Cluster: Sendable {
    let broker: ChildProcess
    let bootstrap: String
    let directory: String
    let config: String

    /// A broker and a configuration running `handlers`, with `extra` YAML appended (more keys of its own).
    init(
        partitions: Int, concurrency: Int = 16, maxInFlight: Int = 10_000, shutdownMilliseconds: Int = 20_000,
        handlers: String = "[ledger]", extra: String = ""
    ) async throws {
        self.broker = try ChildProcess(["broker", "--topic", "ledger:\(partitions)", "--log-level", "warning"])
        self.bootstrap = try #require(try await self.broker.lines.wait(for: "bootstrap line") { !$0.isEmpty }.first)
        self.directory = NSTemporaryDirectory() + "conveyor-e2e-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        self.config = self.directory + "/conveyor.yml"
        try """
            kafka:
              bootstrap_servers: "\(self.bootstrap)"
              session_timeout_ms: 6000
            workers:
              concurrency: \(concurrency)
            commit:
              interval_ms: 200
            backpressure:
              max_in_flight_records: \(maxInFlight)
            shutdown:
              timeout_ms: \(shutdownMilliseconds)
            crash:
              journal_directory: "\(self.directory)/journal"
            handlers:
              enabled: \(handlers)
            \(extra)
            """.write(toFile: self.config, atomically: true, encoding: .utf8)
    }

    func worker(
        _ name: String, delayMilliseconds: Int = 1, trap: String? = nil, logLevel: String = "warning"
    ) throws -> (ChildProcess, String) {
        let path = self.directory + "/\(name).ledger"
        var environment = ["LEDGER_FILE": path, "LEDGER_DELAY_MS": "\(delayMilliseconds)"]
        environment["LEDGER_TRAP"] = trap
        let process = try ChildProcess(
            ["run", "--config", self.config, "--log-level", logLevel],
            executable: "LedgerWorker",
            environment: environment
        )
        return (process, path)
    }

    /// Reads `count` records of a dead-letter topic.
    func deadLetters(topic: String, count: Int) async throws -> [KafkaRecord] {
        var logger = Logger(label: "e2e")
        logger.logLevel = .critical
        let collector = RecordCollector()
        var configuration = try KafkaConfiguration(bootstrapServers: self.bootstrap, groupID: "dlq-reader-\(UUID())")
        try configuration.set("auto.offset.reset", "earliest")
        let consumer = try KafkaConsumer(configuration: configuration, delegate: collector, logger: logger)
        try await consumer.subscribe([topic])
        let records = try await collector.log.wait(for: "\(count) dead letters", timeout: .seconds(60)) {
            $0.records.count >= count
        }.records
        try await consumer.close()
        return records
    }

    /// Produces `count` records `v<index>` (`v<index % keys>` with `sameValuePerKey`) round-robin over
    /// `partitions`, keyed `k<index % keys>`.
    func produce(_ count: Int, partitions: Int, keys: Int = 97, sameValuePerKey: Bool = false) async throws {
        var logger = Logger(label: "e2e")
        logger.logLevel = .critical
        let producer = try KafkaProducer(configuration: try KafkaConfiguration(bootstrapServers: self.bootstrap), logger: logger)
        for index in 0..<count {
            let message = KafkaProducerMessage(
                topic: "ledger", partition: Int32(index % partitions), key: Array("k\(index % keys)".utf8),
                value: Array("v\(sameValuePerKey ? index % keys : index)".utf8)
            )
            try await producer.produce(message) { _ in }
        }
        try await producer.flush(timeout: .seconds(30))
        await producer.close()
    }

    func committed(partitions: Int, group: String = "conveyor.ledger") async throws -> [TopicPartition: Int64?] {
        var logger = Logger(label: "e2e")
        logger.logLevel = .critical
        let admin = try KafkaAdmin(configuration: try KafkaConfiguration(bootstrapServers: self.bootstrap), logger: logger)
        return try await admin.committedOffsets(
            group: group, partitions: (0..<Int32(partitions)).map { TopicPartition("ledger", $0) }
        )
    }

    /// Waits until a ledger holds at least `count` records (or a minute passed).
    func waitForLedger(_ path: String, atLeast count: Int) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while ledger(path).count < count, clock.now < deadline {
            // The ledger is a file written by another process: read it again shortly.
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until the ledgers together hold `count` distinct values.
    func waitForAll(_ count: Int, in paths: [String], timeout: Duration = .seconds(60)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while Set(paths.flatMap { ledger($0) }.map(\.value)).count < count {
            guard clock.now < deadline else {
                Issue.record("only \(Set(paths.flatMap { ledger($0) }.map(\.value)).count) of \(count) records handled")
                return
            }
            // The ledgers are files written by other processes: read them again shortly.
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func stop() async throws {
        self.broker.signal()
        _ = try await self.broker.waitForExit()
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

@Suite("Worker processes")
struct WorkerProcessTests {
    @Test("A worker killed with SIGKILL mid-stream: nothing lost, and no committed offset passes an unhandled record")
    func killedWorker() async throws {
        let cluster = try await Cluster(partitions: 6)
        try await cluster.produce(4_000, partitions: 6)
        let (first, firstLedger) = try cluster.worker("first", delayMilliseconds: 2)
        let (second, secondLedger) = try cluster.worker("second", delayMilliseconds: 2)
        // Let both work for a while, then kill the first without warning.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while ledger(firstLedger).count < 300 || ledger(secondLedger).isEmpty, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        first.signal(SIGKILL)
        #expect(try await first.waitForExit() != 0)

        // Whatever the group committed, every record below it was handled (written to a ledger) before.
        let committedAtKill = try await cluster.committed(partitions: 6)
        let handledAtKill = Set((ledger(firstLedger) + ledger(secondLedger)).map { "\($0.partition)/\($0.offset)" })
        for (partition, offset) in committedAtKill {
            for below in 0..<(offset ?? 0) {
                #expect(handledAtKill.contains("\(partition.partition)/\(below)"), "\(partition)@\(below) committed unhandled")
            }
        }

        try await cluster.waitForAll(4_000, in: [firstLedger, secondLedger])
        // The survivor takes the dead worker's partitions over once its session times out, handles again what
        // was not committed, and commits everything.
        var committedTotal: Int64 = 0
        while committedTotal < 4_000, clock.now < deadline + .seconds(60) {
            try await Task.sleep(for: .milliseconds(200))
            committedTotal = try await cluster.committed(partitions: 6).values.map { $0 ?? 0 }.reduce(0, +)
        }
        #expect(committedTotal == 4_000, "every partition committed to its end")
        second.signal()
        #expect(try await second.waitForExit() == 0)
        let values = Set((ledger(firstLedger) + ledger(secondLedger)).map(\.value))
        #expect(values == Set((0..<4_000).map { "v\($0)" }))
        try await cluster.stop()
    }

    @Test("Graceful stop with work in flight, then restart: nothing finished is redelivered")
    func gracefulStop() async throws {
        let cluster = try await Cluster(partitions: 4, concurrency: 8, maxInFlight: 40)
        try await cluster.produce(2_000, partitions: 4)
        let (first, firstLedger) = try cluster.worker("first", delayMilliseconds: 5)
        try await cluster.waitForLedger(firstLedger, atLeast: 200)
        first.signal()
        #expect(try await first.waitForExit() == 0)
        let handledFirst = ledger(firstLedger)
        #expect(handledFirst.count < 2_000, "stopped mid-stream")

        let (second, secondLedger) = try cluster.worker("second", delayMilliseconds: 1)
        try await cluster.waitForAll(2_000, in: [firstLedger, secondLedger])
        second.signal()
        #expect(try await second.waitForExit() == 0)
        let again = Set(handledFirst.map(\.value)).intersection(ledger(secondLedger).map(\.value))
        // As in the rebalance test: the embedded broker may refuse the final commit while the group rebalances.
        withKnownIssue("the embedded broker refused the commit before release", isIntermittent: true) {
            #expect(again.isEmpty, "redelivered after a clean stop: \(again.prefix(10))")
        } when: {
            first.standardError.contains("Commit before release failed")
        }
        try await cluster.stop()
    }

    @Test("Past the shutdown timeout: exit 3, every abandoned record listed, none committed, all redelivered")
    func shutdownTimeout() async throws {
        let cluster = try await Cluster(partitions: 2, concurrency: 4, shutdownMilliseconds: 1_000)
        try await cluster.produce(100, partitions: 2)
        // Each record takes 3 s: once the first four are done, the next four are mid-flight and the rest wait.
        let (first, firstLedger) = try cluster.worker("first", delayMilliseconds: 3_000)
        try await cluster.waitForLedger(firstLedger, atLeast: 4)
        first.signal()
        #expect(try await first.waitForExit() == 3)
        let handled = ledger(firstLedger)
        let abandoned = first.lines.value.filter { $0.hasPrefix("abandoned ") }
        #expect(abandoned.count == 100 - handled.count, "every unfinished record is listed")

        // Nothing abandoned was committed: per partition, the committed offset is at most the first abandoned one.
        let committed = try await cluster.committed(partitions: 2)
        let handledOffsets = Set(handled.map { "\($0.partition)/\($0.offset)" })
        for (partition, offset) in committed {
            for below in 0..<(offset ?? 0) {
                #expect(handledOffsets.contains("\(partition.partition)/\(below)"), "\(partition)@\(below) committed unhandled")
            }
        }

        let (second, secondLedger) = try cluster.worker("second", delayMilliseconds: 1)
        try await cluster.waitForAll(100, in: [firstLedger, secondLedger])
        second.signal()
        #expect(try await second.waitForExit() == 0)
        #expect(Set((handled + ledger(secondLedger)).map(\.value)) == Set((0..<100).map { "v\($0)" }))
        try await cluster.stop()
    }

    @Test("A record that traps the process: after crash.max crashes it is dead-lettered without running again")
    func crashQuarantine() async throws {
        // One lane: every record running at the moment of a crash is counted, so with more lanes the records
        // running beside the trap would be counted too (see the README).
        let cluster = try await Cluster(partitions: 2, concurrency: 1)
        try await cluster.produce(200, partitions: 2)
        // v77 kills every worker that runs it; each start finds the journal of the one before.
        var statuses: [Int32] = []
        for attempt in 1...2 {
            let (worker, _) = try cluster.worker("crash-\(attempt)", trap: "v77")
            statuses.append(try await worker.waitForExit(timeout: .seconds(60)))
        }
        #expect(statuses.allSatisfy { $0 != 0 }, "both workers died on the trap: \(statuses)")
        let counts = try String(contentsOfFile: cluster.directory + "/journal/crash-counts", encoding: .utf8)
        #expect(counts.contains("ledger\tledger\t1\t38"), "v77 is ledger[1]@38, counted: \(counts)")

        let (survivor, survivorLedger) = try cluster.worker("survivor", trap: "v77")
        try await cluster.waitForAll(199, in: [survivorLedger] + (1...2).map { cluster.directory + "/crash-\($0).ledger" })
        let dead = try await cluster.deadLetters(topic: "ledger.dlq", count: 1)
        survivor.signal()
        #expect(try await survivor.waitForExit() == 0, "the survivor never ran v77")
        #expect(dead.count == 1)
        #expect(dead.first?.headers.contains(KafkaHeader(name: "conveyor.reason", string: "crash")) == true)
        #expect(dead.first?.headers.contains(KafkaHeader(name: "conveyor.original.offset", string: "38")) == true)
        #expect(!ledger(survivorLedger).map(\.value).contains("v77"))
        try await cluster.stop()
    }

    @Test("A worker joining mid-stream: the leaving partitions' finished work is committed before release")
    func rebalanceWhileRunning() async throws {
        // About 15 s of work for one worker (6,000 records, 10 ms each, 4 at a time): the second joins early and
        // takes partitions over well before the end, even on a loaded machine.
        let cluster = try await Cluster(partitions: 6, concurrency: 4, maxInFlight: 60)
        try await cluster.produce(6_000, partitions: 6)
        let (first, firstLedger) = try cluster.worker("first", delayMilliseconds: 10)
        try await cluster.waitForLedger(firstLedger, atLeast: 100)
        let (second, secondLedger) = try cluster.worker("second", delayMilliseconds: 10)
        try await cluster.waitForAll(6_000, in: [firstLedger, secondLedger])
        first.signal()
        second.signal()
        let firstStatus = try await first.waitForExit()
        #expect(firstStatus == 0)
        #expect(try await second.waitForExit() == 0)
        if firstStatus != 0 { print("first worker, last lines:\n" + first.lines.value.suffix(60).joined(separator: "\n")) }
        let firstValues = ledger(firstLedger).map(\.value)
        let secondValues = ledger(secondLedger).map(\.value)
        #expect(!secondValues.isEmpty, "the second worker took partitions over")
        #expect(Set(firstValues).union(secondValues) == Set((0..<6_000).map { "v\($0)" }), "nothing lost")
        let both = Set(firstValues).intersection(secondValues)
        // The embedded broker refuses a commit while its group is rebalancing (REBALANCE_IN_PROGRESS), which can
        // hit the commit before release; the records finished since the last periodic commit are then redelivered.
        // That outcome is known and logged; any other duplicate is a failure.
        let refused = first.standardError.contains("Commit before release failed")
        withKnownIssue("the embedded broker refused the commit before release", isIntermittent: true) {
            #expect(both.isEmpty, "\(both.count) records handled by both")
            #expect(firstValues.count + secondValues.count == 6_000)
        } when: {
            refused
        }
        try await cluster.stop()
    }
}

@Suite("Configuration on the command line")
struct CheckConfigTests {
    @Test("check-config accepts the example file and names every problem of a bad one")
    func checkConfig() async throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../config/conveyor.yml").standardizedFileURL.path
        let good = try ChildProcess(["check-config", "--config", example])
        #expect(try await good.waitForExit() == 0)
        #expect(good.lines.value.last?.hasSuffix(": ok") == true)

        let path = NSTemporaryDirectory() + "conveyor-bad-\(UUID().uuidString).yml"
        try """
            kafka:
              bootstrap_servers: "127.0.0.1:9092"
            workers:
              concurrency: many
            handlers:
              enabled: [inventory]
            """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bad = try ChildProcess(["check-config", "--config", path])
        #expect(try await bad.waitForExit() != 0)
        #expect(bad.lines.value.contains { $0.contains("workers.concurrency") && $0.contains("many") })

        let unknown = try ChildProcess(["check-config", "--config", example, "--handler", "nope"])
        #expect(try await unknown.waitForExit() != 0)
        #expect(unknown.lines.value.contains { $0.contains("'nope'") && $0.contains("inventory") })

        let missing = try ChildProcess(["run", "--config", "/no/such/file.yml"])
        #expect(try await missing.waitForExit() != 0)
        #expect(missing.standardError.contains("/no/such/file.yml"))
    }
}
