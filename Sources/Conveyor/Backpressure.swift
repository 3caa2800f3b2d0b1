/// The in-flight budget of a process: records and bytes handed to the worker pool and not finished.
///
/// Above the budget, fetching pauses; it resumes once both counts fall below half the budget. Between the two
/// watermarks nothing changes, so that fetching does not flap.
struct Backpressure: Sendable {
    /// What the consumers must do after a change.
    enum Action: Equatable, Sendable {
        case none
        case pause
        case resume
    }

    /// The most records in flight before fetching pauses.
    let maxRecords: Int
    /// The most key and value bytes in flight before fetching pauses.
    let maxBytes: Int

    private(set) var records = 0
    private(set) var bytes = 0
    /// Whether fetching is paused for the budget.
    private(set) var isPaused = false

    init(maxRecords: Int, maxBytes: Int) {
        self.maxRecords = maxRecords
        self.maxBytes = maxBytes
    }

    /// Records were dispatched.
    mutating func add(records: Int, bytes: Int) -> Action {
        self.records += records
        self.bytes += bytes
        guard !self.isPaused, self.records > self.maxRecords || self.bytes > self.maxBytes else { return .none }
        self.isPaused = true
        return .pause
    }

    /// Records finished (or were abandoned).
    mutating func remove(records: Int, bytes: Int) -> Action {
        self.records -= records
        self.bytes -= bytes
        guard self.isPaused, self.records <= self.maxRecords / 2, self.bytes <= self.maxBytes / 2 else { return .none }
        self.isPaused = false
        return .resume
    }
}
