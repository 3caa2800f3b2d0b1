import ArgumentParser
import Conveyor
import Foundation
import Logging
import RdKafka
import Synchronization

/// `conveyor bench-consumer`: one measured consumer run of `conveyor bench`, in a process of its own.
struct BenchConsumerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-consumer",
        abstract: "One consumer run of `conveyor bench` (used by it; prints records, seconds and peak RSS).",
        shouldDisplay: false
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        /// librdkafka's C loop: keys and values, no headers.
        case raw
        /// `KafkaConsumer` reading keys and values, no headers: the same information as `raw`.
        case conveyor
        /// `KafkaConsumer` reading keys, values and headers (its default).
        case conveyorHeaders = "conveyor+headers"
        /// W1: the whole runtime (worker pool, lanes by key, offsets, commits) with a handler that does nothing.
        case runtimeNoop = "runtime-noop"
        /// W2: the whole runtime with a handler that waits 1 ms per record.
        case runtimeIO = "runtime-io"
        /// The no-op runtime with idempotency keys (the Kafka key) in `--idempotency-store`.
        case runtimeIdempotent = "runtime-idempotent"
    }

    @Option(help: "Worker concurrency of the runtime modes.")
    var concurrency: Int = 64

    @Option(help: "In-flight record budget of the runtime modes.")
    var maxInFlight: Int = 50_000

    @Option(help: "The idempotency store of the runtime-idempotent mode.")
    var idempotencyStore = "memory://"

    @Option var mode: Mode
    @OptionGroup var client: ClientOptions
    @Option var topic: String
    @Option var group: String
    @Option var records: Int
    @Option(help: "With other processes in the group: stop once the group committed --records records of this many partitions (instead of once this process handled --records).")
    var groupPartitions: Int?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.bench-consumer")
        var configuration = try self.client.makeConfiguration(groupID: self.group)
        configuration.readsHeaders = self.mode == .conveyorHeaders
        let result: BenchResult
        switch self.mode {
        case .raw:
            let raw = try RawConsumerBaseline.consume(
                configuration: configuration, topic: self.topic, records: Int64(self.records), logger: logger
            )
            result = BenchResult(
                records: raw.records, seconds: raw.elapsed.seconds, cpuSeconds: Self.cpuSeconds(),
                peakRSSKilobytes: Self.peakRSS()
            )
        case .runtimeNoop, .runtimeIO, .runtimeIdempotent:
            let (count, elapsed) = try await self.runRuntime(configuration: configuration, logger: logger)
            result = BenchResult(
                records: Int64(count), seconds: elapsed.seconds, cpuSeconds: Self.cpuSeconds(),
                peakRSSKilobytes: Self.peakRSS()
            )
        case .conveyor, .conveyorHeaders:
            let counter = CountingDelegate(target: self.records)
            let consumer = try KafkaConsumer(configuration: configuration, delegate: counter, logger: logger)
            try await consumer.subscribe([self.topic])
            let (count, elapsed) = await counter.finished()
            try await consumer.close()
            result = BenchResult(
                records: Int64(count), seconds: elapsed.seconds, cpuSeconds: Self.cpuSeconds(),
                peakRSSKilobytes: Self.peakRSS()
            )
        }
        print(result.line)
    }

    /// Runs the Conveyor runtime with the mode's handler until `records` were handled, then stops it cleanly.
    private func runRuntime(configuration: KafkaConfiguration, logger: Logger) async throws -> (Int, Duration) {
        let handler: any Handler.Type = self.mode == .runtimeIO ? BenchIOHandler.self : BenchNoopHandler.self
        var runtime = RuntimeConfiguration(bootstrapServers: configuration.bootstrapServers)
        runtime.sessionTimeout = .seconds(6)
        runtime.concurrency = self.concurrency
        runtime.maxInFlightRecords = self.maxInFlight
        var settings = RuntimeConfiguration.HandlerSettings(name: handler.name)
        settings.groupID = self.group
        settings.topics = [self.topic]
        settings.properties = configuration.properties
        if self.mode == .runtimeIdempotent {
            var idempotency = IdempotencySettings()
            idempotency.key = .recordKey
            settings.idempotency = idempotency
            runtime.idempotencyStore = self.idempotencyStore
        }
        runtime.handlers = [settings]
        let supervisor = try Supervisor(configuration: runtime, registry: try HandlerRegistry([handler]), logger: logger)
        let target = self.records
        return try await withThrowingTaskGroup(of: (Int, Duration)?.self) { group in
            group.addTask {
                _ = try await supervisor.run(signals: [])
                return nil
            }
            if let partitions = self.groupPartitions {
                let admin = try KafkaAdmin(configuration: configuration, logger: logger)
                let positions = (0..<Int32(partitions)).map { TopicPartition(self.topic, $0) }
                group.addTask { try await Self.watch(supervisor, group: self.group, committing: target, of: positions, admin: admin) }
            } else {
                BenchProgress.handled.expect(target)
                group.addTask { await BenchProgress.handled.finished() }
            }
            // The first to finish is the target (or a failed run, whose error is thrown here).
            let first = try await group.next()!
            await supervisor.triggerGracefulShutdown()
            guard let result = first else {
                throw ValidationError("the runtime stopped before handling \(self.records) records")
            }
            group.cancelAll()
            try await group.waitForAll()
            return result
        }
    }

    /// For a group of processes: returns this process's count of handled records (by the runtime's statistics)
    /// and the time from its first one (counted by the handler, as in a single process) to the moment the group's
    /// committed offsets add up to `target` (read every 50 ms; no faster timer runs beside the handlers).
    private static func watch(
        _ supervisor: Supervisor, group: String, committing target: Int, of partitions: [TopicPartition], admin: KafkaAdmin
    ) async throws -> (Int, Duration) {
        while true {
            try await Task.sleep(for: .milliseconds(50))
            let committed = try await admin.committedOffsets(group: group, partitions: partitions)
            if committed.values.reduce(0, { $0 + Int($1 ?? 0) }) >= target {
                let now = ContinuousClock.now
                let handled = supervisor.statistics.reduce(0) { $0 + $1.handled + $1.duplicatesSkipped }
                return (handled, now - (BenchProgress.handled.firstRecord ?? now))
            }
        }
    }

    /// User and system CPU time of this process so far.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }

    /// `VmHWM` of `/proc/self/status`: the process's peak resident set size, in KiB.
    static func peakRSS() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        return line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }
}

/// Counts records the way the C baseline does (touching each key and value length) until a target.
final class CountingDelegate: KafkaConsumerDelegate {
    private let progress: BenchProgress
    private let bytes = Atomic<Int>(0)

    init(target: Int) {
        self.progress = BenchProgress(target: target)
    }

    func consumer(_ control: KafkaConsumerControl, didReceive records: [KafkaRecord]) {
        var bytes = 0
        for record in records {
            bytes &+= record.byteCount
        }
        self.bytes.add(bytes, ordering: .relaxed)
        self.progress.add(records.count)
    }

    /// Suspends until the target was reached; returns the count and the time from first to last batch.
    func finished() async -> (Int, Duration) {
        await self.progress.finished()
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}
