/// Receives what a ``KafkaConsumer`` reads and every change of its assignment.
///
/// Every method is called on the consumer's poll thread, one at a time, with a ``KafkaConsumerControl`` that is
/// valid only during the call. A method may block the poll thread (librdkafka keeps heartbeating on its own
/// threads), but while it does, no other record is read and no other ``KafkaConsumer`` operation runs: a method
/// must never wait for work that itself awaits an operation of the same consumer.
public protocol KafkaConsumerDelegate: AnyObject, Sendable {
    /// Records read in one batch; within a partition, in offset order.
    func consumer(_ control: KafkaConsumerControl, didReceive records: [KafkaRecord])

    /// Partitions were added to the assignment. Pause them here to keep them from delivering.
    func consumer(_ control: KafkaConsumerControl, didAssign partitions: [TopicPartition])

    /// Partitions are about to be taken away. They are still owned: finish or abandon their work, store the
    /// finished offsets and commit them with `control` before returning. Only then are they released.
    func consumer(_ control: KafkaConsumerControl, willRevoke partitions: [TopicPartition])

    /// Partitions were lost without a chance to commit (the session timed out); another member may already own
    /// them. Their offsets can no longer be stored.
    func consumer(_ control: KafkaConsumerControl, didLose partitions: [TopicPartition])

    /// A non-fatal error: the consumer keeps running and librdkafka retries by itself.
    func consumer(_ control: KafkaConsumerControl, didFail error: KafkaError)
    /// A hold (``KafkaConsumerControl/hold(until:)``) reached its deadline; records are read again unless the
    /// delegate holds again here.
    func consumerHoldDidExpire(_ control: KafkaConsumerControl)
}

extension KafkaConsumerDelegate {
    /// Does nothing.
    public func consumer(_ control: KafkaConsumerControl, didAssign partitions: [TopicPartition]) {}
    /// Does nothing: the partitions are released without a commit.
    public func consumer(_ control: KafkaConsumerControl, willRevoke partitions: [TopicPartition]) {}
    /// Does nothing.
    public func consumer(_ control: KafkaConsumerControl, didLose partitions: [TopicPartition]) {}
    /// Does nothing.
    public func consumer(_ control: KafkaConsumerControl, didFail error: KafkaError) {}
    /// Does nothing.
    public func consumerHoldDidExpire(_ control: KafkaConsumerControl) {}
}
