import Conveyor
import Synchronization

/// Progress of the benchmark handlers in this process: records handled, and when the first and the target one
/// finished.
final class BenchProgress: Sendable {
    private struct State {
        var target = Int.max
        var count = 0
        var start: ContinuousClock.Instant?
        var end: ContinuousClock.Instant?
        var waiter: CheckedContinuation<(Int, Duration), Never>?
    }

    /// The progress the benchmark handlers report to.
    static let shared = BenchProgress()

    private let state = Mutex(State())

    init(target: Int = .max) {
        self.state.withLock { $0.target = target }
    }

    func setTarget(_ target: Int) {
        self.state.withLock { $0.target = target }
    }

    func recordHandled() {
        self.add(1)
    }

    /// Counts `records` more.
    func add(_ records: Int) {
        let now = ContinuousClock.now
        let done: (CheckedContinuation<(Int, Duration), Never>, (Int, Duration))? = self.state.withLock { state in
            state.count += records
            state.start = state.start ?? now
            guard state.count >= state.target, state.end == nil, let start = state.start else { return nil }
            state.end = now
            defer { state.waiter = nil }
            return state.waiter.map { ($0, (state.count, now - start)) }
        }
        if let (waiter, value) = done {
            waiter.resume(returning: value)
        }
    }

    /// Suspends until the target was reached; returns the count and the time from first to last record.
    func finished() async -> (Int, Duration) {
        await withCheckedContinuation { continuation in
            let ready: (Int, Duration)? = self.state.withLock { state in
                guard let start = state.start, let end = state.end else {
                    state.waiter = continuation
                    return nil
                }
                return (state.count, end - start)
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// W1: a handler that does nothing.
struct BenchNoopHandler: Handler {
    static let name = "bench-noop"
    let topics = ["bench"]

    func handle(_ record: Record, context: HandlerContext) async throws {
        BenchProgress.shared.recordHandled()
    }
}

/// W2: a handler that waits 1 ms, like a call to another service.
struct BenchIOHandler: Handler {
    static let name = "bench-io"
    let topics = ["bench"]

    func handle(_ record: Record, context: HandlerContext) async throws {
        try await Task.sleep(for: .milliseconds(1))
        BenchProgress.shared.recordHandled()
    }
}
