import RdKafka

/// Which offsets of each assigned partition may be committed: per partition, the offset after the longest
/// prefix of finished records. Nothing is ever committable past a record that is not finished.
///
/// Records are registered in offset order per partition (the order the poll thread reads them) and may finish
/// in any order. Every assignment of a partition gets a new epoch; a completion tagged with an older epoch (its
/// partition was revoked meanwhile, maybe re-assigned) is ignored.
struct OffsetTracker {
    /// The epoch a record was dispatched under.
    typealias Epoch = UInt64

    private struct Partition {
        let epoch: Epoch
        /// Offsets dispatched and not yet passed by the committable watermark, ascending, from `head`.
        var offsets: [Int64] = []
        var head = 0
        /// Finished offsets at or after `offsets[head]`.
        var finished: Set<Int64> = []
        /// The next offset to commit: the first unfinished record, or one past the last dispatched record.
        var committable: Int64?
        /// The offset last handed out by ``OffsetTracker/takeCommittable()``.
        var taken: Int64?

        mutating func dispatch(_ offset: Int64) -> Epoch? {
            if let last = self.offsets.last ?? self.committable.map({ $0 - 1 }), offset <= last {
                return nil
            }
            self.offsets.append(offset)
            return self.epoch
        }

        mutating func finish(_ offset: Int64, epoch: Epoch) -> Bool {
            guard self.epoch == epoch else { return false }
            self.finished.insert(offset)
            self.advance()
            return true
        }

        mutating func advance() {
            while self.head < self.offsets.count, self.finished.remove(self.offsets[self.head]) != nil {
                self.committable = self.offsets[self.head] + 1
                self.head += 1
            }
            if self.head == self.offsets.count {
                self.offsets.removeAll(keepingCapacity: true)
                self.head = 0
            } else if self.head > 4096, self.head * 2 > self.offsets.count {
                self.offsets.removeFirst(self.head)
                self.head = 0
            }
        }

        var inFlight: Int { self.offsets.count - self.head }
    }

    private var partitions: [TopicPartition: Partition] = [:]
    private var nextEpoch: Epoch = 1

    /// Starts tracking a newly assigned partition; returns its epoch.
    @discardableResult
    mutating func assign(_ partition: TopicPartition) -> Epoch {
        defer { self.nextEpoch += 1 }
        self.partitions[partition] = Partition(epoch: self.nextEpoch)
        return self.nextEpoch
    }

    /// Stops tracking a revoked partition; later completions for it are ignored. Returns the offsets that
    /// were dispatched and not finished (abandoned), ascending.
    @discardableResult
    mutating func revoke(_ partition: TopicPartition) -> [Int64] {
        guard let state = self.partitions.removeValue(forKey: partition) else { return [] }
        return state.offsets[state.head...].filter { !state.finished.contains($0) }
    }

    /// The current epoch of a partition, if it is assigned.
    func epoch(of partition: TopicPartition) -> Epoch? {
        self.partitions[partition]?.epoch
    }

    /// Registers a record handed to the worker pool. Returns its epoch, or `nil` if the record must not run:
    /// its partition is not assigned, or its offset is not past the last dispatched one (a redelivery of a record
    /// already in hand).
    mutating func dispatch(_ partition: TopicPartition, offset: Int64) -> Epoch? {
        // Mutated in place (through the dictionary's `_modify`), never copied: the arrays can be large.
        self.partitions[partition]?.dispatch(offset)
    }

    /// Marks a record finished (handled, dead-lettered or skipped). Returns `false` if its epoch is stale.
    @discardableResult
    mutating func finish(_ partition: TopicPartition, offset: Int64, epoch: Epoch) -> Bool {
        self.partitions[partition]?.finish(offset, epoch: epoch) ?? false
    }

    /// Records dispatched and not finished, per partition.
    func inFlight(_ partition: TopicPartition) -> Int {
        self.partitions[partition]?.inFlight ?? 0
    }

    /// The committable offset of each partition that moved since the last call, and marks them taken.
    mutating func takeCommittable() -> [TopicPartitionOffset] {
        var result: [TopicPartitionOffset] = []
        for (partition, state) in self.partitions {
            guard let offset = state.committable, offset != state.taken else { continue }
            result.append(TopicPartitionOffset(partition, offset: offset))
            self.partitions[partition]?.taken = offset
        }
        return result
    }

    /// The committable offsets of `partitions`, whether or not they moved.
    func committable(_ partitions: some Sequence<TopicPartition>) -> [TopicPartitionOffset] {
        partitions.compactMap { partition in
            self.partitions[partition]?.committable.map { TopicPartitionOffset(partition, offset: $0) }
        }
    }
}
