import RdKafka

/// Chooses the worker-pool lane of each record of one handler, by its ordering (see ``Ordering``).
///
/// - `key`: the key's hash modulo the lane count, so that a key always takes the same lane and keeps its order;
///   two keys share a lane when their hashes meet, which costs parallelism, never order. Keyless records follow
///   their partition.
/// - `partition`: each partition gets a lane of its own when first seen (round robin over the pool), so that
///   partitions do not share lanes by chance while lanes are free.
/// - `none`: round robin, record by record.
///
/// Used by the poll thread only.
struct LaneAssignment {
    let ordering: Ordering
    private let pool: WorkerPool
    private var partitionLanes: [TopicPartition: Int] = [:]
    private var recent: (TopicPartition, Int)?
    private var nextSingle: Int

    init(ordering: Ordering, pool: WorkerPool) {
        self.ordering = ordering
        self.pool = pool
        self.nextSingle = pool.nextLane()
    }

    /// The lane of `record`.
    mutating func lane(for record: KafkaRecord) -> Int {
        switch self.ordering {
        case .key:
            let lane = record.withUnsafeKeyBytes { key in key.map { Self.lane(ofKey: $0, lanes: self.pool.concurrency) } }
            return lane ?? self.lane(of: record.topicPartition)
        case .partition:
            return self.lane(of: record.topicPartition)
        case .none:
            self.nextSingle = (self.nextSingle + 1) % self.pool.concurrency
            return self.nextSingle
        }
    }

    /// The lane of a key among `lanes` lanes.
    ///
    /// The hash is 64-bit FNV-1a: a few cycles per byte for the short keys Kafka records carry, stable across
    /// processes, and well spread for the modulo (its low bits mix every byte).
    static func lane(ofKey key: UnsafeRawBufferPointer, lanes: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return Int(hash % UInt64(lanes))
    }

    /// See ``lane(ofKey:lanes:)``.
    static func lane(ofKey key: [UInt8], lanes: Int) -> Int {
        key.withUnsafeBytes { Self.lane(ofKey: $0, lanes: lanes) }
    }

    private mutating func lane(of partition: TopicPartition) -> Int {
        if let (cached, lane) = self.recent, cached == partition {
            return lane
        }
        let lane = self.partitionLanes[partition] ?? self.pool.nextLane()
        self.partitionLanes[partition] = lane
        self.recent = (partition, lane)
        return lane
    }
}
