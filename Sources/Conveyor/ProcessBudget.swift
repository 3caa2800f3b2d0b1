import Synchronization

/// The process-wide in-flight budget (see ``Backpressure``) and the consumers it pauses and resumes.
final class ProcessBudget: Sendable {
    private struct State {
        var backpressure: Backpressure
        var onResume: [@Sendable () -> Void] = []
    }

    private let state: Mutex<State>

    init(maxRecords: Int, maxBytes: Int) {
        self.state = Mutex(State(backpressure: Backpressure(maxRecords: maxRecords, maxBytes: maxBytes)))
    }

    /// Whether fetching is paused for the budget.
    var isPaused: Bool { self.state.withLock { $0.backpressure.isPaused } }

    /// Registers what to call when fetching may resume.
    func onResume(_ action: @escaping @Sendable () -> Void) {
        self.state.withLock { $0.onResume.append(action) }
    }

    /// Records were dispatched; returns `true` if fetching must pause.
    func add(records: Int, bytes: Int) -> Bool {
        self.state.withLock { $0.backpressure.add(records: records, bytes: bytes) } == .pause
    }

    /// Records finished; resumes every consumer when the budget allows it.
    func remove(records: Int, bytes: Int) {
        let resume: [@Sendable () -> Void] = self.state.withLock { state in
            state.backpressure.remove(records: records, bytes: bytes) == .resume ? state.onResume : []
        }
        resume.forEach { $0() }
    }
}
