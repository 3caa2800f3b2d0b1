import RdKafka
import Synchronization

/// The records of one poll batch that go to one lane: positions in the batch and their tickets. The batch is
/// shared by every lane's run, so that dispatching costs no per-record copy on the poll thread.
struct LaneRun: Sendable {
    /// The whole poll batch.
    let batch: [KafkaRecord]
    /// Positions in `batch` of this run's records, in offset order per partition.
    var indices: [Int] = []
    /// Their tickets from the offset tracker.
    var tickets: [OffsetTracker.Ticket] = []
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
        /// Tickets of the newly settled records, in run order.
        var tickets: ArraySlice<OffsetTracker.Ticket>
        /// Those of them not handled (skipped, or given up between retries because their partition went away),
        /// in run order.
        var unhandled: [OffsetTracker.Ticket]
        /// Their key and value bytes.
        var bytes: Int
        /// How many of them the handler was called for, by topic (the runs of one topic in run order).
        var attemptedByTopic: [(String, Int)]
    }

    private struct Reporting {
        var reported = 0
        /// Positions of records given up, ascending.
        var unhandled: [Int] = []
    }

    let run: LaneRun
    private let finished = Atomic<Int>(0)
    private let reporting = Mutex(Reporting())

    init(_ run: LaneRun) {
        self.run = run
    }

    /// The record at `position` was given up rather than handled; call before ``finish(through:)``.
    func markUnhandled(_ position: Int) {
        self.reporting.withLock { $0.unhandled.append(position) }
    }

    /// Records up to and including `position` are finished.
    func finish(through position: Int) {
        self.finished.store(position + 1, ordering: .releasing)
    }

    /// The tickets of the records that started: the finished ones and the one running (if any).
    var startedTickets: ArraySlice<OffsetTracker.Ticket> {
        let started = min(self.finished.load(ordering: .acquiring) + 1, self.run.tickets.count)
        return self.run.tickets[..<started]
    }

    /// Takes the records finished and not yet reported.
    func takeReport() -> Report? {
        let end = self.finished.load(ordering: .acquiring)
        let taken: (range: Range<Int>, unhandled: [Int])? = self.reporting.withLock { reporting in
            guard end > reporting.reported else { return nil }
            defer { reporting.reported = end }
            let range = reporting.reported..<end
            return (range, reporting.unhandled.filter { range.contains($0) })
        }
        guard let (range, unhandled) = taken else { return nil }
        var bytes = 0
        var attempted: [(String, Int)] = []
        var unhandledLeft = unhandled[...]
        for position in range {
            let record = self.run.batch[self.run.indices[position]]
            bytes += record.byteCount
            if position == unhandledLeft.first {
                unhandledLeft.removeFirst()
            } else if let last = attempted.last, last.0 == record.topic {
                attempted[attempted.count - 1].1 += 1
            } else {
                attempted.append((record.topic, 1))
            }
        }
        return Report(
            tickets: self.run.tickets[range], unhandled: unhandled.map { self.run.tickets[$0] }, bytes: bytes,
            attemptedByTopic: attempted
        )
    }
}
