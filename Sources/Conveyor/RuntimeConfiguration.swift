import RdKafka

/// The configuration of a Conveyor process: the Kafka cluster, the worker pool, offsets, budgets, timeouts, and
/// the handlers to run. Every value has a documented default; see `config/conveyor.yml`.
public struct RuntimeConfiguration: Sendable {
    /// One handler to run.
    public struct HandlerSettings: Sendable {
        /// The registered handler name.
        public var name: String
        /// The consumer group. Default `conveyor.<name>`.
        public var groupID: String
        /// The topics, when they differ from the handler's own.
        public var topics: [String]?
        /// How its records are ordered. Default ``Ordering/key``.
        public var ordering: Ordering = .key
        /// librdkafka properties for this handler's consumer only, over the global ones.
        public var properties: [String: String] = [:]
        /// `handlers.<name>.retry.*`: this handler's retry policy, when it differs from `retry.*` (keys left out
        /// come from there).
        public var retryPolicy: RetryPolicy?
        /// `handlers.<name>.dead_letter_topic`. Default `<source topic>.dlq`.
        public var deadLetterTopic: String?
        /// `handlers.<name>.idempotency.*`: the handler's idempotency keys; `nil` (the default) runs it without.
        public var idempotency: IdempotencySettings?
        /// `handlers.<name>.retry_topics_ms`: delays of the delayed retry topics `<topic>.retry.<delay>`, in
        /// order. Default none.
        public var retryTopicDelays: [Duration] = []

        /// Settings for handler `name` with every default.
        public init(name: String) {
            self.name = name
            self.groupID = "conveyor.\(name)"
        }
    }

    /// `kafka.bootstrap_servers`. Required.
    public var bootstrapServers: String
    /// `kafka.properties`: librdkafka properties for every client.
    public var kafkaProperties: [String: String] = [:]
    /// `kafka.session_timeout_ms`. Default 45,000 (librdkafka's); 6,000 suits the embedded broker.
    public var sessionTimeout: Duration = .seconds(45)
    /// `kafka.assignment_strategy`. Default cooperative-sticky.
    public var assignmentStrategy: KafkaConfiguration.AssignmentStrategy = .cooperativeSticky
    /// `workers.concurrency`: records handled at the same time by the process. Default 64.
    public var concurrency = 64
    /// `commit.interval_ms`: how often finished offsets are committed. Default 1,000 ms.
    public var commitInterval: Duration = .seconds(1)
    /// `backpressure.max_in_flight_records`. Default 50,000.
    public var maxInFlightRecords = 50_000
    /// `backpressure.max_in_flight_bytes`. Default 64 MiB.
    public var maxInFlightBytes = 64 << 20
    /// `rebalance.drain_timeout_ms`: how long a revoked partition's in-flight records may finish. Default 10 s.
    public var drainTimeout: Duration = .seconds(10)
    /// `shutdown.timeout_ms`: how long in-flight records may finish after SIGTERM/SIGINT. Default 30 s.
    public var shutdownTimeout: Duration = .seconds(30)
    /// `retry.*`: attempts of a failing record and the waits between them. Default ``RetryPolicy/default``.
    public var retryPolicy: RetryPolicy = .default
    /// `dead_letter.delivery_timeout_ms`: how long one dead-letter write may take before it counts as failed and
    /// is tried again. Default 5 s.
    public var deadLetterDeliveryTimeout: Duration = .seconds(5)
    /// `dead_letter.flood_guard.window` / `.max_share`: once more than `max_share` of a handler's last `window`
    /// (to 2 × `window`) records were dead-lettered, the handler pauses instead. Defaults 100 and 0.5; a share
    /// of 1 turns the guard off.
    public var floodGuardWindow = 100
    /// See ``floodGuardWindow``.
    public var floodGuardMaxShare = 0.5
    /// `idempotency.store`: where idempotency keys live, by URL. `memory://` (the default: this process only, bounded
    /// by `idempotency.memory_capacity`), `sqlite:///path/to/keys.db` (one host) or
    /// `postgres://user:password@host:port/database` (every process and host of a deployment).
    public var idempotencyStore = "memory://"
    /// `idempotency.memory_capacity`: the most keys the memory store keeps. Default 100,000.
    public var idempotencyMemoryCapacity = 100_000
    /// `crash.max`: a record that was running when a process died this many times goes to the dead-letter topic
    /// (reason `crash`) without running again. Default 2.
    public var crashMax = 2
    /// `crash.journal_directory`: where each process journals the records it runs and the crash counts live.
    /// Processes that should share counts (all workers of a host) must share it. Default `.conveyor/journal`.
    public var journalDirectory = ".conveyor/journal"
    /// `handlers`: the handlers this process runs.
    public var handlers: [HandlerSettings] = []

    /// A configuration with every default.
    public init(bootstrapServers: String, handlers: [HandlerSettings] = []) {
        self.bootstrapServers = bootstrapServers
        self.handlers = handlers
    }

    /// librdkafka settings every handler's consumer starts from (`kafka.properties` and handler properties win):
    /// a prefetch queue bounded in bytes, with a message-count threshold above anything it holds, so that
    /// librdkafka 2.0.2 never stops fetching for a second when its queue passes `queued.min.messages`.
    static let consumerDefaults: [String: String] = [
        "queued.min.messages": "1000000",
        "queued.max.messages.kbytes": "16384",
    ]

    /// Records per poll batch of a handler's consumer (an eighth of the in-flight budget, from 1,024): the dispatch
    /// costs of a batch (a lock, a closure and a wake-up per lane) spread over more records than the client's
    /// default.
    static let pollBatchSize = 4096

    /// The client configuration of one handler's consumer; `readsHeaders` is the handler's own declaration.
    func consumerConfiguration(for handler: HandlerSettings, readsHeaders: Bool = true) throws -> KafkaConfiguration {
        var configuration = try KafkaConfiguration(
            bootstrapServers: self.bootstrapServers,
            properties: Self.consumerDefaults.merging(self.kafkaProperties) { $1 }
        )
        configuration.groupID = handler.groupID
        configuration.sessionTimeout = self.sessionTimeout
        configuration.heartbeatInterval = min(.seconds(3), self.sessionTimeout / 10)
        configuration.assignmentStrategy = self.assignmentStrategy
        configuration.readsHeaders = readsHeaders
        // A poll batch is dispatched whole before the budget can pause fetching: keep it a small part of the budget
        // (but not so small that a small budget pauses and resumes fetching for every few records).
        configuration.pollBatchSize = min(Self.pollBatchSize, max(1_024, self.maxInFlightRecords / 8))
        // Offsets are stored only for finished records; librdkafka commits what was stored on its timer.
        try configuration.set("enable.auto.commit", "true")
        try configuration.set("auto.commit.interval.ms", String(self.commitInterval.wholeMilliseconds))
        for (name, value) in handler.properties.sorted(by: { $0.key < $1.key }) {
            try configuration.set(name, value)
        }
        return configuration
    }

    /// The retry policy of one handler.
    public func retryPolicy(for handler: HandlerSettings) -> RetryPolicy {
        handler.retryPolicy ?? self.retryPolicy
    }

    /// The configuration of the dead-letter producer: the shared one, with the dead-letter delivery timeout.
    func deadLetterProducerConfiguration() throws -> KafkaConfiguration {
        var configuration = try self.clientConfiguration()
        try configuration.set("message.timeout.ms", String(self.deadLetterDeliveryTimeout.wholeMilliseconds))
        return configuration
    }

    /// The client configuration shared by the producer and every consumer.
    func clientConfiguration() throws -> KafkaConfiguration {
        try KafkaConfiguration(bootstrapServers: self.bootstrapServers, properties: self.kafkaProperties)
    }
}
