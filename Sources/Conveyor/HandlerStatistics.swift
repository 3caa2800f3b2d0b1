import RdKafka

/// Counters of one handler in this process.
public struct HandlerStatistics: Sendable, Hashable {
    /// The handler's name.
    public var name: String
    /// Its consumer group.
    public var group: String
    /// Records handled successfully (duplicates, dead letters and skips not included).
    public var handled: Int
    /// Attempts that threw.
    public var failedAttempts: Int
    /// Records written to the dead-letter topic.
    public var deadLettered: Int
    /// Records acknowledged without effect.
    public var skipped: Int
    /// Records published to a delayed retry topic (they are counted again when they run from there).
    public var sentToRetryTopics: Int
    /// Records handed to the worker pool and not finished.
    public var inFlight: Int
    /// Whether a dead-letter write is failing right now (its records stay in flight; nothing is committed past
    /// them).
    public var isDeadLetterBlocked: Bool
    /// Partitions paused because a dead-letter (or retry-topic) write of one of their records keeps failing.
    public var partitionsPausedForWrites: Set<TopicPartition>
    /// Records acknowledged without running because their idempotency key had completed.
    public var duplicatesSkipped: Int
    /// Whether records wait for an unreachable idempotency store (their partitions paused).
    public var isIdempotencyStoreUnavailable: Bool
    /// Whether the flood guard paused the handler (too many recent records dead-lettered).
    public var isPausedByFloodGuard: Bool
}
