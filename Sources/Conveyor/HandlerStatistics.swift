/// Counters of one handler in this process.
public struct HandlerStatistics: Sendable, Hashable {
    /// The handler's name.
    public var name: String
    /// Its consumer group.
    public var group: String
    /// Records handled successfully.
    public var handled: Int
    /// Attempts that threw (each is retried).
    public var failedAttempts: Int
    /// Records handed to the worker pool and not finished.
    public var inFlight: Int
}
