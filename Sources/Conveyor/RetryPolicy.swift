/// How a handler's failing records are retried in place (on their lane) before they go to the dead-letter topic.
public struct RetryPolicy: Sendable, Hashable {
    /// The wait between two attempts.
    public enum Backoff: Sendable, Hashable {
        /// `base` after the first failure, doubling after each further one up to `max`, each wait shortened by a
        /// random share of up to `jitter` (0...1) so that many failing records do not retry in step.
        case exponential(base: Duration, max: Duration, jitter: Double)
        /// The same wait every time.
        case fixed(Duration)
        /// No wait.
        case none
    }

    /// Attempts in all, the first included; at least 1. After the last, the record goes to the dead-letter topic.
    public var maxAttempts: Int
    /// The wait between attempts.
    public var backoff: Backoff

    /// A policy.
    public init(maxAttempts: Int, backoff: Backoff) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
    }

    /// The runtime's default: 5 attempts, 100 ms doubling up to 30 s, 20 % jitter.
    public static let `default` = RetryPolicy(
        maxAttempts: 5, backoff: .exponential(base: .milliseconds(100), max: .seconds(30), jitter: 0.2)
    )

    /// The wait after failed attempt number `attempt` (from 1).
    public func delay(afterAttempt attempt: Int, using random: inout some RandomNumberGenerator) -> Duration {
        switch self.backoff {
        case .none:
            return .zero
        case .fixed(let wait):
            return wait
        case .exponential(let base, let cap, let jitter):
            let doublings = min(max(attempt - 1, 0), 40)
            let full = min(base * Double(1 << min(doublings, 30)), cap)
            let share = min(max(jitter, 0), 1)
            return full * (1 - share * Double.random(in: 0...1, using: &random))
        }
    }
}
