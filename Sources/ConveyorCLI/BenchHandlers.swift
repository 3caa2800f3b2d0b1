import Conveyor
import Synchronization

/// Progress of a benchmark consumer: records read, and when the first and the target one arrived.
final class BenchProgress: Sendable {
    /// The records the runtime modes' handlers ran for, in this process (its target is set by the run).
    static let handled = BenchProgress()

    private struct Times {
        var start: ContinuousClock.Instant?
        var end: ContinuousClock.Instant?
        var waiter: CheckedContinuation<(Int, Duration), Never>?
    }

    private let target: Atomic<Int>
    private let count = Atomic<Int>(0)
    private let times = Mutex(Times())

    init(target: Int = .max) {
        self.target = Atomic(target)
    }

    /// When the first record was counted.
    var firstRecord: ContinuousClock.Instant? { self.times.withLock { $0.start } }

    /// Sets the count at which ``finished()`` returns.
    func expect(_ target: Int) {
        self.target.store(target, ordering: .relaxed)
    }

    /// Counts `records` more.
    func add(_ records: Int) {
        let (before, after) = self.count.add(records, ordering: .relaxed)
        let target = self.target.load(ordering: .relaxed)
        let isFirst = before == 0
        let reachesTarget = before < target && after >= target
        guard isFirst || reachesTarget else { return }
        let now = ContinuousClock.now
        let done: (CheckedContinuation<(Int, Duration), Never>, (Int, Duration))? = self.times.withLock { times in
            times.start = times.start.map { min($0, now) } ?? now
            guard reachesTarget, let start = times.start else { return nil }
            times.end = now
            defer { times.waiter = nil }
            return times.waiter.map { ($0, (after, now - start)) }
        }
        if let (waiter, value) = done {
            waiter.resume(returning: value)
        }
    }

    /// Suspends until the target was reached; returns the count and the time from first to last record.
    func finished() async -> (Int, Duration) {
        await withCheckedContinuation { continuation in
            let ready: (Int, Duration)? = self.times.withLock { times in
                guard let start = times.start, let end = times.end else {
                    times.waiter = continuation
                    return nil
                }
                return (self.count.load(ordering: .relaxed), end - start)
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// W1: a handler that does nothing but count the record (as the raw baseline counts its records).
struct BenchNoopHandler: Handler {
    static let name = "bench-noop"
    /// Like the raw baseline, it reads keys and values only.
    static let readsHeaders = false
    let topics = ["bench"]

    func handle(_ record: Record, context: HandlerContext) async throws {
        BenchProgress.handled.add(1)
    }
}

/// W2: a handler that waits 1 ms, like a call to another service.
struct BenchIOHandler: Handler {
    static let name = "bench-io"
    let topics = ["bench"]

    func handle(_ record: Record, context: HandlerContext) async throws {
        try await Task.sleep(for: .milliseconds(1))
        BenchProgress.handled.add(1)
    }
}
