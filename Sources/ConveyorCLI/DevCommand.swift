import ArgumentParser
import Conveyor
import Foundation
import Logging
import RdKafka
import StoreHandlers
import Synchronization

/// `conveyor dev`: the example store on an embedded broker (or an external one), with a stream of orders and a
/// live summary, until Ctrl-C.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run the example store's handlers on an embedded broker with a live stream of orders.",
        discussion: """
            Starts an embedded broker (unless --bootstrap-servers names one), creates the topics `orders` and \
            `shipments`, runs the handlers inventory, payments (some payments fail transiently and are \
            retried), shipping and order-stats (a read model written in the transactions that complete its \
            idempotency keys, in --store), each in its own consumer group, produces OrderCreated events at \
            --rate, and prints a summary every --every seconds: rates, in-flight records, failed attempts and \
            lag per handler. Ctrl-C (or --duration) stops it cleanly.
            """
    )

    @Option(name: [.customShort("b"), .long], help: "Use this Kafka cluster instead of an embedded broker.")
    var bootstrapServers: String?

    @Option(help: "The idempotency store holding order-stats' keys and table (default: a new SQLite file in a temporary directory).")
    var store: String?

    @Option(help: "Orders per second.")
    var rate: Int = 200

    @Option(help: "Stop by itself after this many seconds.")
    var duration: Int?

    @Option(help: "Seconds between summaries.")
    var every: Int = 2

    @Option(help: "Share of orders whose payment fails transiently (1 or 2 times) before it succeeds.")
    var failureRate: Double = 0.1

    @Flag(help: "Log every retry and rebalance (by default only errors are logged, under the summary).")
    var verbose = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...100_000).contains(self.rate) else { throw ValidationError("--rate: must be in 1...100000") }
        guard self.every > 0 else { throw ValidationError("--every: must be positive") }
        guard (0...1).contains(self.failureRate) else { throw ValidationError("--failure-rate: must be in 0...1") }
        if let duration = self.duration, duration <= 0 { throw ValidationError("--duration: must be positive") }
    }

    func run() async throws {
        var logger = self.logging.makeLogger(label: "conveyor.dev")
        if !self.verbose {
            logger.logLevel = max(logger.logLevel, .error)
        }
        let kafka: EmbeddedKafka? = self.bootstrapServers == nil ? try EmbeddedKafka(brokers: 1, logger: logger) : nil
        try kafka?.createTopic(OrderCreated.topic, partitions: 8)
        try kafka?.createTopic(ShipmentRequested.topic, partitions: 8)
        let bootstrap = self.bootstrapServers ?? kafka!.bootstrapServers
        StandardOutput.write("conveyor dev: Kafka at \(bootstrap)\(kafka == nil ? "" : " (embedded)"); Ctrl-C stops\n")

        var configuration = RuntimeConfiguration(
            bootstrapServers: bootstrap,
            handlers: storeHandlers.map { RuntimeConfiguration.HandlerSettings(name: $0.name) }
        )
        configuration.sessionTimeout = .seconds(6)
        configuration.retryPolicy = RetryPolicy(
            maxAttempts: 10, backoff: .exponential(base: .milliseconds(50), max: .seconds(1), jitter: 0.2)
        )
        configuration.idempotencyStore = self.store
            ?? "sqlite://" + NSTemporaryDirectory() + "conveyor-dev-\(UUID().uuidString)/keys.db"
        let store = try await configuration.makeIdempotencyStore(logger: logger)
        StandardOutput.write("conveyor dev: idempotency keys and the order-stats table in \(configuration.idempotencyStore)\n")
        let supervisor = try Supervisor(
            configuration: configuration, registry: try HandlerRegistry(storeHandlers), logger: logger, idempotencyStore: store
        )
        let producer = try KafkaProducer(configuration: try KafkaConfiguration(bootstrapServers: bootstrap), logger: logger)
        try await producer.checkConnectivity()
        let admin = try KafkaAdmin(configuration: try KafkaConfiguration(bootstrapServers: bootstrap), logger: logger)

        let produced = Counter()
        let orders = Task { try await self.produceOrders(producer, produced: produced) }
        let summary = Task { try await self.summarize(supervisor, admin: admin, produced: produced) }
        let timer = Task {
            guard let duration = self.duration else { return }
            try await Task.sleep(for: .seconds(duration))
            await supervisor.triggerGracefulShutdown()
        }
        let signals = ShutdownSignals(supervisor)
        let report = try await supervisor.run(signals: [])
        withExtendedLifetime(signals) {}
        orders.cancel()
        summary.cancel()
        timer.cancel()
        await producer.close()
        try await self.printSummary(supervisor, admin: admin, produced: produced.value)
        let model = try await OrderStatsHandler.customers(in: store)
        await store.close()
        StandardOutput.write(
            "order-stats: \(model.values.reduce(0) { $0 + $1.orders }) orders of \(model.count) customers in the read model\n"
        )
        StandardOutput.write("order-stats, top customers by total:\n")
        for (customer, stats) in model.sorted(by: { $0.value.totalCents > $1.value.totalCents }).prefix(5) {
            StandardOutput.write("  \(customer): \(stats.orders) orders, \(Self.money(stats.totalCents))\n")
        }
        if !report.isClean {
            report.abandoned.forEach { StandardOutput.write("abandoned \($0)\n") }
            throw ExitCode(RunCommand.abandonedExitCode)
        }
    }

    /// Emits orders at `rate` per second until cancelled.
    private func produceOrders(_ producer: KafkaProducer, produced: Counter) async throws {
        let skus = ["book", "lamp", "mug", "chair", "desk", "pen", "plant", "rug"]
        let clock = ContinuousClock()
        let start = clock.now
        var index = 0
        var generator = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            let customer = "customer-\(Int.random(in: 1...50, using: &generator))"
            let lines = (0..<Int.random(in: 1...3, using: &generator)).map { _ in
                OrderLine(
                    sku: skus.randomElement(using: &generator)!,
                    quantity: Int.random(in: 1...4, using: &generator),
                    unitPriceCents: Int.random(in: 199...9_999, using: &generator)
                )
            }
            let failures = Double.random(in: 0..<1, using: &generator) < self.failureRate
                ? Int.random(in: 1...2, using: &generator) : 0
            let order = OrderCreated(
                orderID: "order-\(index)", customerID: customer, lines: lines,
                createdAtMilliseconds: Int64(Date().timeIntervalSince1970 * 1000), paymentFailures: failures
            )
            let message = KafkaProducerMessage(
                topic: OrderCreated.topic, key: Array(customer.utf8), value: Array(try JSONEncoder().encode(order))
            )
            try await producer.produce(message) { result in
                if case .success = result { produced.increment() }
            }
            index += 1
            // Pace the stream: the index-th order is due index/rate seconds after the start.
            let due = start + .milliseconds(index * 1000 / self.rate)
            if due > clock.now {
                try await Task.sleep(until: due, clock: clock)
            }
        }
    }

    private func summarize(_ supervisor: Supervisor, admin: KafkaAdmin, produced: Counter) async throws {
        var previous: [String: Int] = [:]
        var previousProduced = 0
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(self.every))
            let rates = Dictionary(uniqueKeysWithValues: supervisor.statistics.map { statistics in
                (statistics.name, (statistics.handled - previous[statistics.name, default: 0]) / self.every)
            })
            previous = Dictionary(uniqueKeysWithValues: supervisor.statistics.map { ($0.name, $0.handled) })
            let producedNow = produced.value
            try await self.printSummary(
                supervisor, admin: admin, produced: producedNow,
                rates: rates, producedRate: (producedNow - previousProduced) / self.every
            )
            previousProduced = producedNow
        }
    }

    /// Prints one summary; with `rates` (records per second per handler) while running, without at the end.
    private func printSummary(
        _ supervisor: Supervisor,
        admin: KafkaAdmin,
        produced: Int,
        rates: [String: Int]? = nil,
        producedRate: Int = 0
    ) async throws {
        var lines = [
            rates == nil ? "final: \(produced) orders produced" : "live: \(produced) orders produced (\(producedRate)/s)",
        ]
        for statistics in supervisor.statistics.sorted(by: { $0.name < $1.name }) {
            let lag = (try? await admin.lag(group: statistics.group, topic: OrderCreated.topic))?.values.reduce(0, +)
            let rate = rates?[statistics.name].map { " (\($0)/s)" } ?? ""
            lines.append(
                "  \(statistics.name.padding(toLength: 12, withPad: " ", startingAt: 0))"
                    + " handled \(statistics.handled)\(rate)  in flight \(statistics.inFlight)"
                    + "  failed attempts \(statistics.failedAttempts)  dead-lettered \(statistics.deadLettered)"
                    + "  skipped \(statistics.skipped)  lag \(lag.map(String.init) ?? "?")"
                    + (statistics.isDeadLetterBlocked ? "  DEAD-LETTER WRITES FAILING" : "")
                    + (statistics.isPausedByFloodGuard ? "  PAUSED BY THE FLOOD GUARD" : "")
            )
        }
        lines.append(
            "  shipments requested \(StoreState.shared.shipments), payments charged \(StoreState.shared.charged.count)"
                + " of \(StoreState.shared.paymentAttempts) attempts"
                + ", units reserved \(StoreState.shared.reserved.values.reduce(0, +))"
        )
        StandardOutput.write(lines.joined(separator: "\n") + "\n")
    }

    private static func money(_ cents: Int) -> String {
        "\(cents / 100).\(String(format: "%02d", cents % 100))"
    }
}

/// A count shared between tasks.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    func increment() {
        self.count.add(1, ordering: .relaxed)
    }

    var value: Int { self.count.load(ordering: .relaxed) }
}
