/// A record to produce.
public struct KafkaProducerMessage: Sendable {
    /// The topic to write to.
    public var topic: String
    /// The partition to write to; `nil` lets the partitioner choose (by key when there is one).
    public var partition: Int32?
    /// The key; `nil` for a null key.
    public var key: [UInt8]?
    /// The value; `nil` for a null value (a tombstone).
    public var value: [UInt8]?
    /// Headers, in order; names may repeat.
    public var headers: [KafkaHeader]

    /// Creates a record to produce.
    public init(
        topic: String,
        partition: Int32? = nil,
        key: [UInt8]? = nil,
        value: [UInt8]?,
        headers: [KafkaHeader] = []
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Where a produced record was written.
public struct KafkaDeliveryReport: Hashable, Sendable {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The record's offset in the partition.
    public var offset: Int64

    /// Creates a delivery report.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}
