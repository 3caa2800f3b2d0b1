import RdKafka
import Synchronization

/// The records of one poll batch that go to one lane, in the order the lane runs them, with their tickets. The
/// batch is shared by every lane's run; what a lane would otherwise look up per record in the batch's storage
/// (sizes, topics) is gathered here by the poll thread, which has it at hand.
struct LaneRun: Sendable {
    /// The whole poll batch.
    let batch: [KafkaRecord]
    /// Positions in `batch` of this run's records, in offset order per partition.
    private(set) var indices: [Int] = []
    /// Their tickets from the offset tracker.
    private(set) var tickets: [OffsetTracker.Ticket] = []
    /// Key and value bytes of the records before each position (one more entry than records).
    private(set) var bytesBefore: [Int] = [0]
    /// The positions where the topic changes (the first is 0), with the topic from there on.
    private(set) var topics: [(position: Int, topic: String)] = []

    /// An empty run of `batch` with room for `capacity` records.
    init(batch: [KafkaRecord], capacity: Int) {
        self.batch = batch
        self.indices.reserveCapacity(capacity)
        self.tickets.reserveCapacity(capacity)
        self.bytesBefore.reserveCapacity(capacity + 1)
    }

    /// The number of records.
    var count: Int { self.indices.count }

    /// The positions of the records of topic run `index` (see ``topics``).
    func positions(ofTopicRun index: Int) -> Range<Int> {
        self.topics[index].position..<(index + 1 < self.topics.count ? self.topics[index + 1].position : self.count)
    }

    /// The record at `position` of the run.
    subscript(position: Int) -> KafkaRecord { self.batch[self.indices[position]] }

    /// Adds the batch's record at `index`, of `byteCount` bytes; `topic` is its topic if that differs from the
    /// run's last record's (or the run is empty).
    mutating func append(_ index: Int, ticket: OffsetTracker.Ticket, byteCount: Int, topic: String?) {
        if let topic {
            self.topics.append((self.indices.count, topic))
        }
        self.indices.append(index)
        self.tickets.append(ticket)
        self.bytesBefore.append(self.bytesBefore[self.bytesBefore.count - 1] + byteCount)
    }

    /// The key and value bytes of all its records.
    var byteCount: Int { self.bytesBefore[self.bytesBefore.count - 1] }

    /// The key and value bytes of the record at `position`.
    func byteCount(at position: Int) -> Int { self.bytesBefore[position + 1] - self.bytesBefore[position] }
}

/// How far a worker got through a ``LaneRun``, and what of it was reported to the runtime.
///
/// A lane runs its records strictly one after another, so progress is a count: the worker publishes it with one
/// atomic store per record, and reports finished records in groups. Whoever needs an up-to-date view while the
/// worker is in a long handler call (the runtime's collector, for commits, drains, shutdown and the budget)
/// reports what is finished too; the lock makes sure each record is reported once.
final class LaneRunProgress: Sendable {
    /// What a report hands to the runtime.
    struct Report {
        /// Tickets of the newly finished records (the watermark may pass them).
        var finished: [OffsetTracker.Ticket] = []
        /// Tickets of the newly settled records that were not handled (skipped, or given up between retries
        /// because their partition went away): the watermark never passes them.
        var skipped: [OffsetTracker.Ticket] = []
        /// The key and value bytes of both.
        var bytes = 0
        /// How many records the handler was called for, by topic (runs of one topic in run order).
        var attemptedByTopic: [(String, Int)] = []

        /// Records settled by this report.
        var count: Int { self.finished.count + self.skipped.count }
    }

    /// What happened to a record, when it was not simply handled.
    private enum Special {
        case unhandled
        /// Its key waits for a retry: a task of its own finishes it (and the runtime hears from that task).
        case handedOff
    }

    private struct Reporting {
        var reported = 0
        var special: [Int: Special] = [:]
    }

    let run: LaneRun
    private let finished = Atomic<Int>(0)
    /// Records started (handlers called), which may run ahead of `finished` while completions are written.
    private let started = Atomic<Int>(0)
    private let reporting = Mutex(Reporting())

    init(_ run: LaneRun) {
        self.run = run
    }

    /// The record at `position` was given up rather than handled; call before ``finish(through:)``.
    func markUnhandled(_ position: Int) {
        self.reporting.withLock { $0.special[position] = .unhandled }
    }

    /// The record at `position` was handed to a task of its key; call before ``finish(through:)``.
    func markHandedOff(_ position: Int) {
        self.reporting.withLock { $0.special[position] = .handedOff }
    }

    /// The handler is called for the record at `position`.
    func begin(_ position: Int) {
        self.started.store(position + 1, ordering: .releasing)
    }

    /// Records up to and including `position` are done with on this lane.
    func finish(through position: Int) {
        self.finished.store(position + 1, ordering: .releasing)
    }

    /// The tickets of the records that started: those done with and the one running (if any).
    var startedTickets: ArraySlice<OffsetTracker.Ticket> {
        let started = min(
            max(self.finished.load(ordering: .acquiring) + 1, self.started.load(ordering: .acquiring)),
            self.run.tickets.count
        )
        return self.run.tickets[..<started]
    }

    /// Takes the records done with and not yet reported.
    func takeReport() -> Report? {
        let end = self.finished.load(ordering: .acquiring)
        let taken: (range: Range<Int>, special: [Int: Special])? = self.reporting.withLock { reporting in
            guard end > reporting.reported else { return nil }
            defer { reporting.reported = end }
            let range = reporting.reported..<end
            return (range, reporting.special.isEmpty ? [:] : reporting.special.filter { range.contains($0.key) })
        }
        guard let (range, special) = taken else { return nil }
        var report = Report()
        report.bytes = self.run.bytesBefore[range.upperBound] - self.run.bytesBefore[range.lowerBound]
        if special.isEmpty {
            report.finished.append(contentsOf: self.run.tickets[range])
        } else {
            report.finished.reserveCapacity(range.count)
            for position in range {
                switch special[position] {
                case .none:
                    report.finished.append(self.run.tickets[position])
                case .unhandled:
                    report.skipped.append(self.run.tickets[position])
                case .handedOff:
                    // Its own task reports it, and its bytes.
                    report.bytes -= self.run.byteCount(at: position)
                }
            }
        }
        // Attempts by topic: the records of each topic run in the range, less those not attempted here.
        for index in self.run.topics.indices {
            let overlap = self.run.positions(ofTopicRun: index).clamped(to: range)
            let attempted = overlap.count - special.keys.count(where: overlap.contains)
            if attempted > 0 {
                report.attemptedByTopic.append((self.run.topics[index].topic, attempted))
            }
        }
        return report
    }
}

/// Records of a lane run whose handlers returned and whose idempotency keys' completions are still to be written
/// (together, in one batch of the store): the lane moves on meanwhile, but reports nothing as finished past the
/// first of them until they are written.
struct PendingCompletions {
    /// One record waiting for its completion.
    struct Entry {
        let position: Int
        let record: KafkaRecord
        let ticket: OffsetTracker.Ticket
        let attempt: Int
        let completion: CompletionRequest
    }

    private(set) var entries: [Entry] = []
    /// Hashes of the entries' ordering keys: a later record of one of them waits until they are written.
    private(set) var keys: Set<Int> = []
    /// The last position done with on the lane, to report once the entries are written.
    private(set) var settledThrough: Int?

    var isEmpty: Bool { self.entries.isEmpty }
    var count: Int { self.entries.count }

    mutating func add(_ entry: Entry, key: Int?) {
        self.entries.append(entry)
        if let key {
            self.keys.insert(key)
        }
        self.settledThrough = entry.position
    }

    /// Records up to `position` are done with on the lane: reported now if nothing is pending, else later.
    mutating func settle(through position: Int, _ progress: LaneRunProgress) {
        if self.entries.isEmpty {
            progress.finish(through: position)
        } else {
            self.settledThrough = position
        }
    }
}
