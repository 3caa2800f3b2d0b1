import Synchronization

/// A record that left the worker pool, as the offset tracker and the budget need it.
struct Completion: Sendable {
    /// The record's ticket from the offset tracker.
    let ticket: OffsetTracker.Ticket
    /// Its key and value bytes, for the budget.
    let bytes: Int
    /// Whether the handler succeeded (as opposed to a record given up because its partition went away).
    let handled: Bool
}

/// The completions of one lane's run of records, not yet reported to the runtime.
///
/// The worker appends one per record and reports them in groups, so that finishing a record costs an
/// uncontended lock rather than the runtime's. Whoever needs an up-to-date view while the worker is busy in a
/// long handler call (the runtime's collector, for commits, drains, shutdown and the budget) takes them too.
final class CompletionBuffer: Sendable {
    private let completions = Mutex<[Completion]>([])

    /// Adds a completion; returns how many are waiting.
    func append(_ completion: Completion) -> Int {
        self.completions.withLock { completions in
            completions.append(completion)
            return completions.count
        }
    }

    /// Removes and returns every waiting completion.
    func takeAll() -> [Completion] {
        self.completions.withLock { completions in
            defer { completions.removeAll(keepingCapacity: true) }
            return completions
        }
    }
}
