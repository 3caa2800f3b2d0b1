import Synchronization

/// The process-wide in-flight budget (see ``Backpressure``) and the consumers it pauses and resumes.
///
/// A spent budget first holds the consumers' reading for up to ``holdLimit`` (the workers usually catch up
/// sooner, and a hold drops nothing librdkafka prefetched); only a budget spent for longer pauses their
/// partitions.
final class ProcessBudget: Sendable {
    /// How long a spent budget holds reading before the consumers pause their partitions. Rebalances wait
    /// for a hold, so it is short.
    static let holdLimit = Duration.seconds(1)

    private struct State {
        var backpressure: Backpressure
        var onResume: [@Sendable () -> Void] = []
        var spentSince: ContinuousClock.Instant?
    }

    private let state: Mutex<State>

    init(maxRecords: Int, maxBytes: Int) {
        self.state = Mutex(State(backpressure: Backpressure(maxRecords: maxRecords, maxBytes: maxBytes)))
    }

    /// Whether fetching is paused for the budget.
    var isPaused: Bool { self.state.withLock { $0.backpressure.isPaused } }

    /// Until when the consumers hold reading for the spent budget; `nil` if it is not spent, or was spent for
    /// longer than ``holdLimit`` (the consumers then pause their partitions).
    func holdDeadline(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        self.state.withLock { state in
            guard state.backpressure.isPaused, let since = state.spentSince, now < since + Self.holdLimit else { return nil }
            return since + Self.holdLimit
        }
    }

    /// Registers what to call when fetching may resume.
    func onResume(_ action: @escaping @Sendable () -> Void) {
        self.state.withLock { $0.onResume.append(action) }
    }

    /// Records were dispatched; returns `true` if fetching must pause.
    func add(records: Int, bytes: Int) -> Bool {
        self.state.withLock { state in
            guard state.backpressure.add(records: records, bytes: bytes) == .pause else { return false }
            state.spentSince = .now
            return true
        }
    }

    /// Records finished; resumes every consumer when the budget allows it.
    func remove(records: Int, bytes: Int) {
        let resume: [@Sendable () -> Void] = self.state.withLock { state in
            guard state.backpressure.remove(records: records, bytes: bytes) == .resume else { return [] }
            state.spentSince = nil
            return state.onResume
        }
        resume.forEach { $0() }
    }
}
