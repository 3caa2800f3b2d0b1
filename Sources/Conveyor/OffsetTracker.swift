import RdKafka

/// Which offsets of each assigned partition may be committed: per partition, the offset after the longest
/// prefix of finished records. Nothing is ever committable past a record that is not finished.
///
/// Records are registered in offset order per partition (the order the poll thread reads them) and may finish
/// in any order. Each registered record gets a ``Ticket``: the partition's assignment epoch and the record's
/// sequence number in it, so that finishing a record costs no search. Every assignment of a partition gets a new
/// epoch; a completion tagged with an older epoch (its partition was revoked meanwhile, maybe re-assigned) is
/// ignored.
///
/// A class, not a struct: it lives inside its runtime's `Mutex` and is only ever used under that lock. Records
/// are registered and settled in groups, so that a run of records of one partition costs one lookup.
final class OffsetTracker {
    /// The epoch a record was dispatched under.
    typealias Epoch = UInt64

    /// What a dispatched record needs to be finished.
    struct Ticket: Hashable, Sendable {
        /// The assignment epoch of the record's partition when it was dispatched.
        var epoch: Epoch
        /// The record's position among the records dispatched in that epoch, from 0.
        var sequence: Int
    }

    /// What became of a dispatched record.
    private enum Outcome: UInt8 {
        /// Queued or running.
        case pending
        /// Handled (or otherwise done with): the watermark may pass it.
        case finished
        /// Not run (its partition is being revoked, or the process is stopping): no longer in flight, never passed;
        /// the partition's next owner gets it again.
        case skipped
    }

    private final class Partition {
        let epoch: Epoch
        /// Offsets dispatched and not yet passed by the committable watermark, ascending, from `head`; `outcomes`
        /// runs beside it. `base` is the sequence number of `offsets[0]`.
        var offsets: [Int64] = []
        var outcomes: [Outcome] = []
        var base = 0
        var head = 0
        /// Records with outcome `pending`.
        var pending = 0
        /// The highest sequence number finished so far.
        var highestFinished = -1
        /// Set when the partition's revocation began: records with a higher sequence number must not start.
        var startCutoff: Int?
        /// The next offset to commit: the first unfinished record, or one past the last dispatched record.
        var committable: Int64?
        /// The offset last handed out by ``OffsetTracker/takeCommittable()``.
        var taken: Int64?

        init(epoch: Epoch) {
            self.epoch = epoch
        }

        /// Registers records of this partition, in offset order, as `(position, offset)` pairs, and writes each
        /// accepted record's ticket to `tickets[position]`. Refused (left `nil`): everything once the revocation
        /// (or the stop) began, since the next owner gets it; and an offset not past the last dispatched one (a
        /// redelivery of a record already in hand). The arrays are touched once per call, not once per record.
        func dispatch(_ entries: some Sequence<(position: Int, offset: Int64)>, into tickets: inout [Ticket?]) {
            guard self.startCutoff == nil else { return }
            var last = self.offsets.last ?? self.committable.map { $0 - 1 } ?? .min
            let first = self.base + self.offsets.count
            var accepted: [Int64] = []
            for (position, offset) in entries where offset > last {
                last = offset
                tickets[position] = Ticket(epoch: self.epoch, sequence: first + accepted.count)
                accepted.append(offset)
            }
            self.offsets.append(contentsOf: accepted)
            self.outcomes.append(contentsOf: repeatElement(.pending, count: accepted.count))
            self.pending += accepted.count
        }

        func settle(_ ticket: Ticket, as outcome: Outcome) -> Bool {
            let index = ticket.sequence - self.base
            guard ticket.epoch == self.epoch, index >= self.head, index < self.offsets.count,
                self.outcomes[index] == .pending
            else { return false }
            self.outcomes[index] = outcome
            self.pending -= 1
            if outcome == .finished {
                self.highestFinished = max(self.highestFinished, ticket.sequence)
            }
            if index == self.head {
                self.advance()
            }
            return true
        }

        private func advance() {
            while self.head < self.offsets.count, self.outcomes[self.head] == .finished {
                self.committable = self.offsets[self.head] + 1
                self.head += 1
            }
            if self.head == self.offsets.count {
                self.base += self.head
                self.offsets.removeAll(keepingCapacity: true)
                self.outcomes.removeAll(keepingCapacity: true)
                self.head = 0
            } else if self.head > 4096, self.head * 2 > self.offsets.count {
                self.base += self.head
                self.offsets.removeFirst(self.head)
                self.outcomes.removeFirst(self.head)
                self.head = 0
            }
        }

        var stillPending: [Int64] {
            (self.head..<self.offsets.count).filter { self.outcomes[$0] == .pending }.map { self.offsets[$0] }
        }
    }

    private var partitions: [TopicPartition: Partition] = [:]
    /// The assigned partitions by epoch (epochs are unique over all partitions), for finishing by ticket.
    private var byEpoch: [Epoch: Partition] = [:]
    private var nextEpoch: Epoch = 1

    init() {}

    /// Starts tracking a newly assigned partition; returns its epoch.
    @discardableResult
    func assign(_ partition: TopicPartition) -> Epoch {
        defer { self.nextEpoch += 1 }
        if let previous = self.partitions[partition] {
            self.byEpoch[previous.epoch] = nil
        }
        let state = Partition(epoch: self.nextEpoch)
        self.partitions[partition] = state
        self.byEpoch[state.epoch] = state
        return state.epoch
    }

    /// Stops tracking a revoked partition; later completions for it are ignored. Returns the offsets that
    /// were dispatched and are still queued or running (abandoned), ascending; skipped ones are not among them.
    @discardableResult
    func revoke(_ partition: TopicPartition) -> [Int64] {
        guard let state = self.partitions.removeValue(forKey: partition) else { return [] }
        self.byEpoch[state.epoch] = nil
        return state.stillPending
    }

    /// Whether a dispatched record may start: its epoch is current, and if the partition's revocation began, the
    /// record is needed to complete the prefix of records that started before (see ``beginRevoke(_:started:)``).
    func mayStart(_ ticket: Ticket) -> Bool {
        guard let partition = self.byEpoch[ticket.epoch] else { return false }
        return partition.startCutoff.map { ticket.sequence <= $0 } ?? true
    }

    /// The revocation of `partitions` begins (or the process stops). Records that have not started must not
    /// start, unless a record after them already started or finished: running those fills the gaps below work
    /// already done, so that all of it can be committed; starting any later one would be wasted, since the
    /// partition's next owner gets it again. `started` is the highest sequence number started per epoch, as far
    /// as the workers know (finished records the tracker has not heard of yet count as started).
    func beginRevoke(_ partitions: some Sequence<TopicPartition>, started: [Epoch: Int]) {
        for topicPartition in partitions {
            guard let partition = self.partitions[topicPartition] else { continue }
            partition.startCutoff = max(partition.highestFinished, started[partition.epoch] ?? -1)
        }
    }

    /// The partitions being tracked.
    var assigned: [TopicPartition] { Array(self.partitions.keys) }

    /// Registers the records of a poll batch handed to the worker pool, except those at the positions in
    /// `excluded`: their tickets by position. A record gets none (`nil`) if it must not run: its partition is not
    /// assigned or its revocation began, or its offset is not past the last dispatched one (a redelivery of a
    /// record already in hand). A run of records of one partition costs one lookup.
    func dispatch(_ records: [KafkaRecord], excluding excluded: Set<Int> = []) -> [Ticket?] {
        var tickets = [Ticket?](repeating: nil, count: records.count)
        // Records are read in place, not copied out of the array (which would cost reference counting).
        records.withUnsafeBufferPointer { records in
            var start = records.startIndex
            while start < records.endIndex {
                var end = start + 1
                while end < records.endIndex, records[end].partition == records[start].partition,
                    records[end].hasSameTopic(as: records[start])
                {
                    end += 1
                }
                if let partition = self.partitions[records[start].topicPartition] {
                    let positions = (start..<end).lazy
                    if excluded.isEmpty {
                        partition.dispatch(positions.map { (position: $0, offset: records[$0].offset) }, into: &tickets)
                    } else {
                        let included = positions.filter { !excluded.contains($0) }
                        partition.dispatch(included.map { (position: $0, offset: records[$0].offset) }, into: &tickets)
                    }
                }
                start = end
            }
        }
        return tickets
    }

    /// ``dispatch(_:excluding:)`` for one record of `partition`.
    func dispatch(_ partition: TopicPartition, offset: Int64) -> Ticket? {
        var tickets: [Ticket?] = [nil]
        self.partitions[partition]?.dispatch(CollectionOfOne((position: 0, offset: offset)), into: &tickets)
        return tickets[0]
    }

    /// Marks a record finished (handled, dead-lettered or skipped): the watermark may pass it. Returns `false` if
    /// its epoch is stale or it was settled before.
    @discardableResult
    func finish(_ ticket: Ticket) -> Bool {
        self.byEpoch[ticket.epoch]?.settle(ticket, as: .finished) ?? false
    }

    /// Marks a record not run (its partition is being revoked, or the process is stopping): it is no longer in
    /// flight, and the watermark never passes it. Returns `false` if its epoch is stale or it was settled before.
    @discardableResult
    func skip(_ ticket: Ticket) -> Bool {
        self.byEpoch[ticket.epoch]?.settle(ticket, as: .skipped) ?? false
    }

    /// ``finish(_:)`` for many records.
    func finish(_ tickets: [Ticket]) {
        self.settle(tickets, as: .finished)
    }

    /// ``skip(_:)`` for many records.
    func skip(_ tickets: [Ticket]) {
        self.settle(tickets, as: .skipped)
    }

    /// Settles tickets; a run of tickets of one epoch costs one lookup.
    private func settle(_ tickets: [Ticket], as outcome: Outcome) {
        var partition: Partition?
        for ticket in tickets {
            if partition?.epoch != ticket.epoch {
                partition = self.byEpoch[ticket.epoch]
            }
            _ = partition?.settle(ticket, as: outcome)
        }
    }

    /// Records dispatched and neither finished nor skipped (queued or running), per partition.
    func inFlight(_ partition: TopicPartition) -> Int {
        self.partitions[partition]?.pending ?? 0
    }

    /// The committable offset of each partition that moved since the last call, and marks them taken.
    func takeCommittable() -> [TopicPartitionOffset] {
        var result: [TopicPartitionOffset] = []
        for (topicPartition, partition) in self.partitions {
            guard let offset = partition.committable, offset != partition.taken else { continue }
            result.append(TopicPartitionOffset(topicPartition, offset: offset))
            partition.taken = offset
        }
        return result
    }

    /// The committable offsets of `partitions`, whether or not they moved.
    func committable(_ partitions: some Sequence<TopicPartition>) -> [TopicPartitionOffset] {
        partitions.compactMap { topicPartition in
            self.partitions[topicPartition]?.committable.map { TopicPartitionOffset(topicPartition, offset: $0) }
        }
    }
}
