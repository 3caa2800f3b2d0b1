import CoreMetrics
import Synchronization

/// The counters of one handler, by topic (swift-metrics, dimensions `handler` and `topic`, plus `reason` for
/// dead letters and skips).
final class HandlerMetrics: Sendable {
    /// What is counted.
    enum Name: String, Sendable {
        /// Handler calls, successful or not.
        case attempts = "conveyor_attempts_total"
        /// Failed handler calls.
        case failures = "conveyor_failures_total"
        /// Records retried after a failure (one per retry).
        case retries = "conveyor_retries_total"
        /// Records written to the dead-letter topic.
        case deadLetters = "conveyor_dead_letters_total"
        /// Dead-letter and retry-topic writes that failed (and will be tried again), by the topic written.
        case deadLetterFailures = "conveyor_dead_letter_failures_total"
        /// Records published to a retry topic.
        case retryTopicPublishes = "conveyor_retry_topic_publishes_total"
        /// Records acknowledged without effect.
        case skips = "conveyor_skips_total"
        /// Records acknowledged without running because their idempotency key had completed.
        case duplicatesSkipped = "conveyor_duplicates_skipped_total"
        /// Records dead-lettered because processes died while running them.
        case quarantines = "conveyor_quarantines_total"
    }

    private struct Key: Hashable {
        var name: Name
        var topic: String
        var reason: String?
    }

    private let handler: String
    private let factory: any MetricsFactory
    private let counters = Mutex<[Key: Counter]>([:])

    init(handler: String, factory: any MetricsFactory) {
        self.handler = handler
        self.factory = factory
    }

    /// Adds `amount` to a counter.
    func increment(_ name: Name, topic: String, reason: String? = nil, by amount: Int = 1) {
        guard amount > 0 else { return }
        let key = Key(name: name, topic: topic, reason: reason)
        let counter = self.counters.withLock { counters in
            if let counter = counters[key] {
                return counter
            }
            var dimensions = [("handler", self.handler), ("topic", topic)]
            if let reason {
                dimensions.append(("reason", reason))
            }
            let counter = Counter(label: name.rawValue, dimensions: dimensions, factory: self.factory)
            counters[key] = counter
            return counter
        }
        counter.increment(by: amount)
    }
}
