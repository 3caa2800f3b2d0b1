import CoreMetrics
import Foundation
import Logging
import Synchronization
import RdKafka
import ServiceLifecycle
import UnixSignals

/// Runs every configured handler of a process: one consumer group per handler, one shared worker pool, one
/// shared producer, and one in-flight budget, as services of one `ServiceGroup` that shuts down gracefully on
/// SIGTERM and SIGINT.
public final class Supervisor: Sendable {
    /// How a run ended.
    public struct Report: Sendable {
        /// Records still in flight when a drain or the shutdown timeout ended; they will be redelivered.
        public var abandoned: [TopicPartitionOffset]

        /// Whether the run ended with nothing abandoned.
        public var isClean: Bool { self.abandoned.isEmpty }
    }

    private let configuration: RuntimeConfiguration
    private let registry: HandlerRegistry
    private let logger: Logger
    private let metrics: any MetricsFactory
    private let idempotencyStore: (any IdempotencyStore)?
    /// The running group, for ``triggerGracefulShutdown()``; or whether a shutdown was asked before it ran.
    private let group = Mutex<(group: ServiceGroup?, shutdownRequested: Bool)>((nil, false))
    /// The runtimes of the current run.
    private let runtimes = Mutex<[HandlerRuntime]>([])

    /// Checks that every configured handler is registered.
    ///
    /// - Throws: ``ConveyorError/Code/unknownHandler`` or ``ConveyorError/Code/configuration``.
    /// - Parameters:
    ///   - metrics: Where the handlers' counters go (swift-metrics); by default the bootstrapped system.
    ///   - idempotencyStore: A store to use instead of the one `idempotency.store` names.
    public init(
        configuration: RuntimeConfiguration,
        registry: HandlerRegistry,
        logger: Logger,
        metrics: (any MetricsFactory)? = nil,
        idempotencyStore: (any IdempotencyStore)? = nil
    ) throws {
        guard !configuration.handlers.isEmpty else {
            throw ConveyorError(.configuration, "handlers: no handler configured; registered: \(registry.names)")
        }
        for settings in configuration.handlers {
            _ = try registry.make(settings.name)
        }
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.metrics = metrics ?? MetricsSystem.factory
        self.idempotencyStore = idempotencyStore
    }

    /// Runs until SIGTERM/SIGINT (or until `signals` is empty and the task is cancelled), then drains, commits
    /// and leaves every group.
    public func run(signals: [UnixSignal] = [.sigterm, .sigint]) async throws -> Report {
        let producer = try KafkaProducer(configuration: try self.configuration.clientConfiguration(), logger: self.logger)
        let deadLetters = try KafkaProducer(
            configuration: try self.configuration.deadLetterProducerConfiguration(), logger: self.logger
        )
        let pool = WorkerPool(concurrency: self.configuration.concurrency, label: "conveyor.workers")
        let budget = ProcessBudget(
            maxRecords: self.configuration.maxInFlightRecords,
            maxBytes: self.configuration.maxInFlightBytes
        )
        let idempotencyStore = try await self.openIdempotencyStore()
        // Expired keys go in the background, every minute.
        let purge = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(60))
                _ = try? await idempotencyStore.purgeExpired(now: Date())
            }
        }
        defer { purge.cancel() }
        let owner = UUID().uuidString
        let crashes = CrashCounts(directory: self.configuration.journalDirectory)
        for entry in crashes.recover() {
            self.logger.warning(
                "A process died while running a record",
                metadata: ["handler": "\(entry.handler)", "topic": "\(entry.topic)", "partition": "\(entry.partition)",
                           "offset": "\(entry.offset)"]
            )
        }
        let journal = try CrashJournal(directory: self.configuration.journalDirectory, lanes: pool.concurrency)
        defer { journal.remove() }
        // Other processes sharing the directory may die meanwhile: their records' counts must reach this one.
        let recovery = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                crashes.recover()
            }
        }
        defer { recovery.cancel() }
        let runtimes = try self.configuration.handlers.map { settings in
            HandlerRuntime(
                handler: try self.registry.make(settings.name),
                settings: settings,
                configuration: self.configuration,
                pool: pool,
                budget: budget,
                producer: producer,
                deadLetters: deadLetters,
                metrics: self.metrics,
                crashes: crashes,
                journal: journal,
                idempotencyStore: idempotencyStore,
                owner: owner,
                logger: self.logger
            )
        }
        self.runtimes.withLock { $0 = runtimes }
        let group = ServiceGroup(
            configuration: .init(
                services: runtimes.map { ServiceGroupConfiguration.ServiceConfiguration(service: HandlerService(runtime: $0)) },
                gracefulShutdownSignals: signals,
                logger: self.logger
            )
        )
        defer { pool.stop() }
        let stopAtOnce = self.group.withLock { state in
            state.group = group
            return state.shutdownRequested
        }
        if stopAtOnce {
            await group.triggerGracefulShutdown()
        }
        let outcome: Result<Void, any Error>
        do {
            try await group.run()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await producer.close(timeout: self.configuration.shutdownTimeout)
        await deadLetters.close(timeout: self.configuration.shutdownTimeout)
        // A store the caller gave is the caller's to close.
        if self.idempotencyStore == nil {
            await idempotencyStore.close()
        }
        try outcome.get()
        return Report(abandoned: runtimes.flatMap(\.abandoned))
    }

    /// The idempotency store (the injected one, or the one `idempotency.store` names), with the tables of the
    /// handlers' transactional effects created.
    ///
    /// - Throws: ``ConveyorError`` naming the store, or the handler whose schema it refused.
    private func openIdempotencyStore() async throws -> any IdempotencyStore {
        let store: any IdempotencyStore
        if let injected = self.idempotencyStore {
            store = injected
        } else {
            store = try await self.configuration.makeIdempotencyStore(logger: self.logger)
        }
        for settings in self.configuration.handlers {
            let schema = try self.registry.type(named: settings.name).storeSchema
            guard !schema.isEmpty else { continue }
            do {
                try await store.prepare(schema: schema)
            } catch {
                throw ConveyorError(
                    .configuration, "handler \(settings.name): its tables cannot be created in idempotency.store: \(error)"
                )
            }
        }
        return store
    }
}

extension Supervisor {
    /// Counters of every handler of the current run.
    public var statistics: [HandlerStatistics] {
        self.runtimes.withLock { $0.map(\.statistics) }
    }

    /// Stops the run as SIGTERM would: stop fetching, drain, commit, leave the groups.
    public func triggerGracefulShutdown() async {
        let group = self.group.withLock { state in
            state.shutdownRequested = true
            return state.group
        }
        await group?.triggerGracefulShutdown()
    }
}

/// One handler's runtime as a service.
struct HandlerService: Service {
    let runtime: HandlerRuntime

    func run() async throws {
        try await self.runtime.run()
    }
}
