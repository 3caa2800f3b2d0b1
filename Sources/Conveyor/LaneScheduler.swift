import RdKafka

/// What serialises records: records of one lane run one at a time, in the order they were submitted.
enum LaneKey: Hashable, Sendable {
    /// Records whose (topic, key) hash to this value (``Ordering/key``). Equal keys always share a lane; two
    /// different keys share one only if their 64-bit hashes collide, which costs parallelism, never order.
    case key(UInt64)
    /// Records of this partition (``Ordering/partition``, and keyless records under ``Ordering/key``).
    case partition(TopicPartition)
    /// One record on its own (``Ordering/none``).
    case single(UInt64)

    /// The lane of a key in a topic.
    static func key(topic: String, key: ArraySlice<UInt8>) -> LaneKey {
        var hasher = Hasher()
        hasher.combine(topic)
        key.withUnsafeBytes { hasher.combine(bytes: $0) }
        return .key(UInt64(bitPattern: Int64(hasher.finalize())))
    }
}

/// The scheduling state of the worker pool: lanes of queued work, and which lanes are ready to run.
///
/// A lane is either running (one worker runs its first item) or ready (waiting for a worker); an empty lane
/// that runs nothing does not exist. A worker that finishes an item of a lane with more work puts the lane at
/// the back of the ready queue, so that a busy key does not starve the others.
struct LaneScheduler<Work> {
    private struct Lane {
        var queue: [Work] = []
        var head = 0
        var isEmpty: Bool { self.head == self.queue.count }

        mutating func pop() -> Work {
            defer {
                self.head += 1
                if self.head == self.queue.count {
                    self.queue.removeAll(keepingCapacity: true)
                    self.head = 0
                }
            }
            return self.queue[self.head]
        }
    }

    private var lanes: [LaneKey: Lane] = [:]
    private var ready: [LaneKey] = []
    private var readyHead = 0

    /// Work items queued and not started.
    private(set) var queued = 0

    /// Whether a lane waits for a worker.
    var hasReadyLane: Bool { self.readyHead < self.ready.count }

    /// Queues `work` on `lane`. Returns `true` if the lane became ready (a worker may start it).
    mutating func submit(_ work: Work, lane: LaneKey) -> Bool {
        self.queued += 1
        if self.lanes[lane] != nil {
            self.lanes[lane]!.queue.append(work)
            return false
        }
        self.lanes[lane] = Lane(queue: [work])
        self.ready.append(lane)
        return true
    }

    /// Takes the first item of the next ready lane; the lane is running until ``finish(_:)``.
    mutating func next() -> (LaneKey, Work)? {
        guard self.readyHead < self.ready.count else { return nil }
        let lane = self.ready[self.readyHead]
        self.readyHead += 1
        if self.readyHead == self.ready.count {
            self.ready.removeAll(keepingCapacity: true)
            self.readyHead = 0
        } else if self.readyHead > 1024, self.readyHead * 2 > self.ready.count {
            self.ready.removeFirst(self.readyHead)
            self.readyHead = 0
        }
        self.queued -= 1
        return (lane, self.lanes[lane]!.pop())
    }

    /// The running item of `lane` finished: the lane is ready again if it has more work, or goes away.
    mutating func finish(_ lane: LaneKey) {
        if self.lanes[lane]?.isEmpty ?? true {
            self.lanes[lane] = nil
        } else {
            self.ready.append(lane)
        }
    }
}
