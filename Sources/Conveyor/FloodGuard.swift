/// Stops a handler from dead-lettering most of its records (a bad deploy, a broken dependency): once more than
/// `maxShare` of its recent records went to the dead-letter topic, the handler pauses instead.
///
/// "Recent" is the last `window` to `2 × window` finished records: two buckets, the current one and the one
/// before, so that counting costs two additions per report of finished records, not a queue of outcomes.
struct FloodGuard: Sendable {
    /// Records per bucket.
    let window: Int
    /// The largest share of dead letters (0...1) allowed among recent records.
    let maxShare: Double

    private var current = (records: 0, deadLetters: 0)
    private var previous = (records: 0, deadLetters: 0)
    /// Whether the guard tripped; it stays tripped until the process restarts.
    private(set) var isTripped = false

    init(window: Int, maxShare: Double) {
        self.window = max(1, window)
        self.maxShare = maxShare
    }

    /// Records finished (handled, skipped or dead-lettered).
    mutating func finished(_ count: Int) {
        self.current.records += count
        if self.current.records >= self.window {
            self.previous = self.current
            self.current = (0, 0)
        }
    }

    /// A record is about to be dead-lettered: returns `false` (and trips) if that would pass the allowed share.
    ///
    /// Dead letters count at once; other finished records arrive in groups, later. So that a burst of dead letters
    /// at start is judged too, the guard judges once the dead letters alone exceed `maxShare × window`, against
    /// at least as many records as dead letters.
    mutating func admitDeadLetter() -> Bool {
        guard !self.isTripped else { return false }
        let deadLetters = self.current.deadLetters + self.previous.deadLetters + 1
        let records = max(self.current.records + self.previous.records, deadLetters)
        if Double(deadLetters) > self.maxShare * Double(self.window), Double(deadLetters) / Double(records) > self.maxShare {
            self.isTripped = true
            return false
        }
        self.current.deadLetters += 1
        return true
    }

    /// The recent share of dead letters, for the message that says why the handler paused.
    var recentShare: Double {
        let deadLetters = self.current.deadLetters + self.previous.deadLetters
        let records = max(self.current.records + self.previous.records, deadLetters)
        return records == 0 ? 0 : Double(deadLetters) / Double(records)
    }
}
