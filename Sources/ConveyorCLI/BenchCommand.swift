import ArgumentParser
import Conveyor
import Foundation
import Logging
import RdKafka
import Synchronization

/// `conveyor bench`: measures Conveyor's consumer against librdkafka's own C consume loop, in the same run, on the
/// same embedded broker, with the same settings, and prints the ratio.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare Conveyor's consumer with the raw librdkafka consumer (records/s and peak RSS).",
        discussion: """
            Starts an embedded broker, produces --records records over --partitions partitions, then runs \
            --rounds rounds; each round consumes everything once with the raw C loop and once with Conveyor's \
            consumer, each in a fresh child process (so that each peak RSS is its own), alternating which goes \
            first. Consumer settings are BenchCommand.consumerDefaults plus any -X.
            """
    )

    /// The prefetch settings the plain consumers (raw, conveyor, conveyor+headers) get: a message-count threshold
    /// above anything the queue holds, so that librdkafka 2.0.2 never hits its one-second fetch back-off, and a
    /// queue bounded in bytes. The runtime modes use the runtime's own defaults
    /// (`RuntimeConfiguration.consumerDefaults`, a 16 MiB queue), which suit a consumer slower than its fetcher.
    static let consumerDefaults: [String] = [
        "queued.min.messages=1000000",
        "queued.max.messages.kbytes=65536",
    ]

    @Option(help: "Records to produce and consume per run (W1: 1,000,000 records of 100 bytes).")
    var records: Int = 1_000_000

    @Option(help: "Partitions of the benchmark topic (the embedded broker keeps at most 5 MiB per partition).")
    var partitions: Int = 32

    @Option(help: "Value size in bytes.")
    var valueSize: Int = 100

    @Option(help: "Records of the W2 run (runtime with a 1 ms handler at concurrency 64); 0 skips it.")
    var ioRecords: Int = 20_000

    @Option(
        help: ArgumentHelp(
            "Consumers to compare with raw (comma-separated): conveyor, conveyor+headers, runtime-noop.",
            valueName: "modes"
        )
    )
    var modes: String = "conveyor,conveyor+headers,runtime-noop"

    @Option(help: "Records of the idempotency run (no-op handler, keys in --idempotency-store, and without); 0 skips it.")
    var idempotentRecords: Int = 0

    @Option(help: "The store of the idempotency run: sqlite:///path/keys.db (a new file) or postgres://... (its table is emptied first).")
    var idempotencyStore = "sqlite://\(NSTemporaryDirectory())conveyor-bench-keys.db"

    @Option(help: "Worker processes of the idempotency run with keys, in one consumer group.")
    var idempotencyWorkers: Int = 1

    @Option(help: "Rounds; each runs every consumer once.")
    var rounds: Int = 3

    @Option(
        name: .customShort("X"),
        help: ArgumentHelp("A librdkafka consumer property for both consumers (repeatable).", valueName: "name=value")
    )
    var properties: [String] = []

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try self.measuredModes()
        guard self.records > 0, self.partitions > 0, self.rounds > 0, self.valueSize >= 0 else {
            throw ValidationError("--records, --partitions and --rounds must be positive, --value-size not negative")
        }
        let perPartition = self.records / self.partitions * (self.valueSize + 40)
        guard perPartition < 5 * 1024 * 1024 else {
            throw ValidationError(
                "about \(perPartition / 1024) KiB per partition: the embedded broker keeps at most 5 MiB; "
                    + "use more --partitions or fewer --records"
            )
        }
    }

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.bench")
        let kafka = try EmbeddedKafka(brokers: 1, logger: logger)
        let topic = "bench"
        try kafka.createTopic(topic, partitions: self.partitions)
        let produceSeconds = try await self.produce(to: topic, on: kafka, logger: logger)
        print("produced \(self.records) records of \(self.valueSize) B over \(self.partitions) partitions "
            + "in \(String(format: "%.2f", produceSeconds)) s")
        print("consumer settings: \((Self.consumerDefaults + self.properties).joined(separator: " ")); runtime: its defaults"
            + (self.properties.isEmpty ? "" : " plus \(self.properties.joined(separator: " "))"))

        let modes = try self.measuredModes().map(\.rawValue)
        var results: [String: [BenchResult]] = [:]
        for round in 1...self.rounds {
            // Rotate which consumer goes first, so that none always meets a cold or a warm broker.
            for index in modes.indices {
                let mode = modes[(index + round - 1) % modes.count]
                let result = try self.runChild(mode: mode, bootstrap: kafka.bootstrapServers, topic: topic, round: round)
                results[mode, default: []].append(result)
                print("round \(round)  \(mode.padding(toLength: 17, withPad: " ", startingAt: 0))" + result.summary)
            }
        }
        let raw = BenchSummary(results["raw"]!)
        for mode in modes {
            let summary = BenchSummary(results[mode]!)
            print("\(mode.padding(toLength: 17, withPad: " ", startingAt: 0)) " + summary.text)
        }
        for mode in modes.dropFirst() {
            let summary = BenchSummary(results[mode]!)
            print(String(
                format: "ratio %@/raw: %.2fx records/s (best), %.2fx (median), %.2fx CPU per record, %.2fx peak RSS",
                mode, summary.bestRate / raw.bestRate, summary.medianRate / raw.medianRate,
                summary.cpuPerRecord / raw.cpuPerRecord, summary.peakRSS / raw.peakRSS
            ))
        }
        if self.ioRecords > 0 {
            let io = try self.runChild(
                mode: BenchConsumerCommand.Mode.runtimeIO.rawValue, bootstrap: kafka.bootstrapServers, topic: topic,
                round: 0, records: self.ioRecords
            )
            print("W2 runtime-io (1 ms per record, concurrency 64, \(self.ioRecords) records) " + io.summary)
        }
        if self.idempotentRecords > 0 {
            try await self.measureIdempotency(bootstrap: kafka.bootstrapServers, topic: topic, logger: logger)
        }
    }

    /// The idempotency comparison, `--rounds` times: the runtime with a no-op handler without a store, then with
    /// keys in an empty `--idempotency-store`; each round's figures, the medians, and the ratio of the medians (one
    /// round's ratio moves a lot on a shared machine: the run without a store lasts a fraction of a second).
    private func measureIdempotency(bootstrap: String, topic: String, logger: Logger) async throws {
        let store = (try? PostgresIdempotencyStore.configuration(self.idempotencyStore)) == nil
            ? self.idempotencyStore : "PostgreSQL"
        var plain: [BenchResult] = []
        var keyed: [BenchResult] = []
        for round in 1...self.rounds {
            try await self.resetIdempotencyStore(logger: logger)
            plain.append(try self.runChild(
                mode: BenchConsumerCommand.Mode.runtimeNoop.rawValue, bootstrap: bootstrap, topic: topic,
                round: 98 + 2 * round, records: self.idempotentRecords
            ))
            keyed.append(try self.runChildren(
                self.idempotencyWorkers, mode: BenchConsumerCommand.Mode.runtimeIdempotent.rawValue,
                bootstrap: bootstrap, topic: topic, round: 99 + 2 * round, records: self.idempotentRecords,
                extra: ["--idempotency-store", self.idempotencyStore]
            ))
            print("idempotency round \(round)  without a store " + plain[round - 1].summary)
            print("idempotency round \(round)  keys in \(store), \(self.idempotencyWorkers) process(es) " + keyed[round - 1].summary)
        }
        let without = BenchSummary(plain)
        let with = BenchSummary(keyed)
        print("idempotency: runtime-noop, 1 process, \(self.idempotentRecords) records  " + without.text)
        print("idempotency: keys in \(store), \(self.idempotencyWorkers) process(es)  " + with.text)
        let ratios = zip(keyed, plain).map { $0.recordsPerSecond / $1.recordsPerSecond }.sorted()
        print(String(
            format: "ratio with keys/without: %.3fx records/s (medians); by round %.3fx to %.3fx",
            with.medianRate / without.medianRate, ratios.first!, ratios.last!
        ))
    }

    /// Starts the idempotency run with an empty store: a new SQLite file, or PostgreSQL's keys table emptied.
    private func resetIdempotencyStore(logger: Logger) async throws {
        if self.idempotencyStore.hasPrefix("sqlite://") {
            try? FileManager.default.removeItem(atPath: String(self.idempotencyStore.dropFirst("sqlite://".count)))
        } else if self.idempotencyStore.hasPrefix("postgres") {
            let store = try await PostgresIdempotencyStore(url: self.idempotencyStore, logger: logger)
            _ = try await store.purgeExpired(now: .distantFuture)
            await store.close()
        }
    }

    /// Runs `count` children of one consumer group at once, each until the group committed `records`: the
    /// records of all of them, and the longest of their times.
    private func runChildren(
        _ count: Int, mode: String, bootstrap: String, topic: String, round: Int, records: Int, extra: [String]
    ) throws -> BenchResult {
        guard count > 1 else {
            return try self.runChild(mode: mode, bootstrap: bootstrap, topic: topic, round: round, records: records, extra: extra)
        }
        let children = try (0..<count).map { _ in
            try self.startChild(
                mode: mode, bootstrap: bootstrap, topic: topic, round: round, records: records,
                extra: extra + ["--group-partitions", String(self.partitions)]
            )
        }
        let results = try children.map { try Self.result(of: $0, mode: mode) }
        return BenchResult(
            records: Int64(records), seconds: results.map(\.seconds).max() ?? 0,
            cpuSeconds: results.reduce(0) { $0 + $1.cpuSeconds },
            peakRSSKilobytes: results.map(\.peakRSSKilobytes).max() ?? 0
        )
    }

    /// Raw first, then the `--modes` consumers.
    private func measuredModes() throws -> [BenchConsumerCommand.Mode] {
        let allowed: [BenchConsumerCommand.Mode] = [.conveyor, .conveyorHeaders, .runtimeNoop]
        var modes: [BenchConsumerCommand.Mode] = [.raw]
        for name in self.modes.split(separator: ",", omittingEmptySubsequences: true) {
            guard let mode = BenchConsumerCommand.Mode(rawValue: String(name)), allowed.contains(mode) else {
                throw ValidationError(
                    "--modes: unknown consumer '\(name)'; choose from \(allowed.map(\.rawValue).joined(separator: ", "))"
                )
            }
            if !modes.contains(mode) { modes.append(mode) }
        }
        return modes
    }

    private func produce(to topic: String, on kafka: EmbeddedKafka, logger: Logger) async throws -> Double {
        var configuration = try KafkaConfiguration(bootstrapServers: kafka.bootstrapServers)
        try configuration.set("linger.ms", "20")
        try configuration.set("batch.num.messages", "10000")
        try configuration.set("queue.buffering.max.messages", "1000000")
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let failures = Atomic<Int>(0)
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: self.valueSize)
        let start = ContinuousClock.now
        for index in 0..<self.records {
            let message = KafkaProducerMessage(
                topic: topic, partition: Int32(index % self.partitions), key: Array("k\(index)".utf8), value: value
            )
            try await producer.produce(message) { result in
                if case .failure = result { failures.add(1, ordering: .relaxed) }
            }
        }
        try await producer.flush(timeout: .seconds(120))
        await producer.close()
        guard failures.load(ordering: .relaxed) == 0 else {
            throw ValidationError("\(failures.load(ordering: .relaxed)) benchmark records were not delivered")
        }
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func runChild(
        mode: String, bootstrap: String, topic: String, round: Int, records: Int? = nil, extra: [String] = []
    ) throws -> BenchResult {
        let records = records ?? self.records
        let child = try self.startChild(mode: mode, bootstrap: bootstrap, topic: topic, round: round, records: records, extra: extra)
        let result = try Self.result(of: child, mode: mode)
        guard result.records >= Int64(records) else {
            throw ValidationError("bench-consumer --mode \(mode) read \(result.records) of \(records) records")
        }
        return result
    }

    /// Starts a `bench-consumer` child; its standard output is the pipe to read its result from.
    private func startChild(
        mode: String, bootstrap: String, topic: String, round: Int, records: Int, extra: [String]
    ) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = [
            "bench-consumer", "--mode", mode, "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", "bench-\(mode)-\(round)", "--records", String(records),
            "--log-level", self.logging.logLevel.rawValue,
        ] + extra + ((mode.hasPrefix("runtime") ? [] : Self.consumerDefaults) + self.properties).flatMap { ["-X", $0] }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        return (process, output)
    }

    /// Waits for a child and parses its result line.
    private static func result(of child: (Process, Pipe), mode: String) throws -> BenchResult {
        let (process, output) = child
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
            let result = BenchResult(line: String(line))
        else {
            throw ValidationError("bench-consumer --mode \(mode) failed with status \(process.terminationStatus)")
        }
        return result
    }
}

/// What one benchmark child measured.
struct BenchResult {
    /// Records consumed.
    var records: Int64
    /// Wall-clock seconds from the first record to the last.
    var seconds: Double
    /// CPU seconds (user and system) of the whole child process.
    var cpuSeconds: Double
    /// Peak resident set size of the child process.
    var peakRSSKilobytes: Int

    var recordsPerSecond: Double { Double(self.records) / self.seconds }
    var peakRSSMegabytes: Double { Double(self.peakRSSKilobytes) / 1024 }
    var summary: String {
        String(
            format: "%10.0f records/s  %6.0f ns CPU/record  peak RSS %6.1f MB",
            self.recordsPerSecond, self.cpuSeconds / Double(self.records) * 1e9, self.peakRSSMegabytes
        )
    }

    init(records: Int64, seconds: Double, cpuSeconds: Double, peakRSSKilobytes: Int) {
        self.records = records
        self.seconds = seconds
        self.cpuSeconds = cpuSeconds
        self.peakRSSKilobytes = peakRSSKilobytes
    }

    /// Parses the child's output line `records=N seconds=S cpu_seconds=C peak_rss_kb=K`.
    init?(line: String) {
        var fields: [String: String] = [:]
        for pair in line.split(separator: " ") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let records = fields["records"].flatMap({ Int64($0) }),
            let seconds = fields["seconds"].flatMap({ Double($0) }),
            let cpu = fields["cpu_seconds"].flatMap({ Double($0) }),
            let rss = fields["peak_rss_kb"].flatMap({ Int($0) })
        else { return nil }
        self.init(records: records, seconds: seconds, cpuSeconds: cpu, peakRSSKilobytes: rss)
    }

    var line: String {
        "records=\(self.records) seconds=\(self.seconds) cpu_seconds=\(self.cpuSeconds) peak_rss_kb=\(self.peakRSSKilobytes)"
    }
}

/// The best and median of several runs of one consumer.
struct BenchSummary {
    var bestRate: Double
    var medianRate: Double
    var cpuPerRecord: Double
    var peakRSS: Double

    init(_ results: [BenchResult]) {
        let rates = results.map(\.recordsPerSecond).sorted()
        self.bestRate = rates.last!
        self.medianRate = rates[rates.count / 2]
        self.cpuPerRecord = results.map { $0.cpuSeconds / Double($0.records) }.sorted()[results.count / 2]
        self.peakRSS = results.map(\.peakRSSMegabytes).max()!
    }

    var text: String {
        String(
            format: "best %10.0f records/s  median %10.0f records/s  median %5.0f ns CPU/record  peak RSS %6.1f MB",
            self.bestRate, self.medianRate, self.cpuPerRecord * 1e9, self.peakRSS
        )
    }
}
