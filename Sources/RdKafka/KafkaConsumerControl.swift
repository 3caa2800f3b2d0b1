/// The operations of a ``KafkaConsumer`` that run on its poll thread.
///
/// A control is handed to every ``KafkaConsumerDelegate`` method, and to the body of
/// ``KafkaConsumer/perform(_:)``. It is valid only for the duration of that call: do not keep it.
public struct KafkaConsumerControl {
    let loop: ConsumerLoop

    init(loop: ConsumerLoop) {
        self.loop = loop
    }

    /// The partitions currently assigned to this consumer.
    public var assignment: Set<TopicPartition> { self.loop.assignment }

    /// The assigned partitions that are paused.
    public var paused: Set<TopicPartition> { self.loop.paused }

    /// Stops fetching from partitions until they are resumed. Pausing a paused partition changes nothing.
    ///
    /// - Throws: ``KafkaError/Code/partitionNotAssigned`` if a partition is not assigned to this consumer.
    public func pause(_ partitions: some Collection<TopicPartition>) throws {
        try self.loop.pause(partitions)
    }

    /// Resumes fetching from paused partitions. Partitions that are not paused are left alone: resuming them
    /// could make librdkafka 2.0.2 deliver records twice.
    public func resume(_ partitions: some Collection<TopicPartition>) throws {
        try self.loop.resume(partitions)
    }

    /// Reads no records until `deadline` or until ``endHold()``; operations sent to the consumer still run, and
    /// the delegate hears ``KafkaConsumerDelegate/consumerHoldDidExpire(_:)`` if the deadline passes. Records
    /// keep arriving in librdkafka's prefetch queue until its bound (`queued.max.messages.kbytes`,
    /// `queued.min.messages`) stops the fetchers, and nothing fetched is dropped, unlike with ``pause(_:)``.
    /// Rebalances wait for the hold to end: keep it short (a second or so).
    public func hold(until deadline: ContinuousClock.Instant) {
        self.loop.hold(until: deadline)
    }

    /// Ends a hold (see ``hold(until:)``); nothing happens if there is none.
    public func endHold() {
        self.loop.endHold()
    }

    /// Makes the next records of each partition come from the given offset (the next fetch starts there).
    /// Pause a partition before seeking it back, or records fetched meanwhile may arrive before the seek applies.
    ///
    /// - Throws: ``KafkaError/Code/partitionNotAssigned`` if a partition is not assigned to this consumer.
    public func seek(_ offsets: some Collection<TopicPartitionOffset>) throws {
        try self.loop.seek(offsets)
    }

    /// Stores offsets to be committed by the next commit. Each offset is the next record to consume.
    ///
    /// - Throws: ``KafkaError/Code/partitionNotAssigned`` naming every partition this consumer does not own;
    ///   nothing is stored for any of them.
    public func store(_ offsets: some Collection<TopicPartitionOffset>) throws {
        try self.loop.store(offsets)
    }

    /// Commits the stored offsets and waits for the broker's answer. Succeeds if nothing new was stored.
    public func commit() throws {
        try self.loop.commit(asynchronously: false)
    }

    /// Sends a commit of the stored offsets without waiting; failures reach the delegate's `didFail`.
    public func commitAsynchronously() throws {
        try self.loop.commit(asynchronously: true)
    }
}
