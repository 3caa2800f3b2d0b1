/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    /// The topic's name.
    public var topic: String
    /// The partition's number, from 0.
    public var partition: Int32

    /// Creates a topic-partition.
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(self.topic)[\(self.partition)]" }
}

/// A partition and an offset in it.
///
/// For offsets that are stored or committed, the offset is the **next** record to consume: after finishing the
/// record at offset 41, store 42.
public struct TopicPartitionOffset: Hashable, Sendable, CustomStringConvertible {
    /// The partition.
    public var topicPartition: TopicPartition
    /// The offset.
    public var offset: Int64

    /// Creates a partition offset.
    public init(_ topicPartition: TopicPartition, offset: Int64) {
        self.topicPartition = topicPartition
        self.offset = offset
    }

    /// Creates a partition offset.
    public init(_ topic: String, _ partition: Int32, offset: Int64) {
        self.init(TopicPartition(topic, partition), offset: offset)
    }

    public var description: String { "\(self.topicPartition)@\(self.offset)" }
}
