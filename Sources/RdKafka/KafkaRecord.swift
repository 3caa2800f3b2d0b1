/// A header of a Kafka record: a name and an optional binary value. Names may repeat.
public struct KafkaHeader: Hashable, Sendable {
    /// The header's name.
    public var name: String
    /// The header's value; `nil` is a null value, distinct from an empty one.
    public var value: [UInt8]?

    /// Creates a header.
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    /// Creates a header with a UTF-8 string value.
    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }
}

/// When a record was created or appended, as the broker reports it.
public struct KafkaTimestamp: Hashable, Sendable {
    /// Which clock the timestamp comes from.
    public enum Kind: Hashable, Sendable {
        /// Set by the producer.
        case createTime
        /// Set by the broker when it appended the record.
        case logAppendTime
    }

    /// Which clock the timestamp comes from.
    public var kind: Kind
    /// Milliseconds since 1970-01-01 UTC.
    public var millisecondsSinceEpoch: Int64

    /// Creates a timestamp.
    public init(kind: Kind, millisecondsSinceEpoch: Int64) {
        self.kind = kind
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }
}

/// A record read from Kafka.
///
/// Records of one poll batch share one buffer, so that handing a record over costs no allocation per record;
/// ``key`` and ``value`` are views into that buffer.
public struct KafkaRecord: Sendable {
    /// The topic the record was read from.
    public let topic: String
    /// The partition the record was read from.
    public let partition: Int32
    /// The record's offset in its partition.
    public let offset: Int64
    /// The record's timestamp, when it has one.
    public let timestamp: KafkaTimestamp?

    let storage: KafkaBatchStorage
    let slot: KafkaBatchStorage.RecordSlot

    init(
        topic: String,
        partition: Int32,
        offset: Int64,
        timestamp: KafkaTimestamp?,
        storage: KafkaBatchStorage,
        slot: KafkaBatchStorage.RecordSlot
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.storage = storage
        self.slot = slot
    }

    /// The record's partition.
    public var topicPartition: TopicPartition { TopicPartition(self.topic, self.partition) }

    /// The key's bytes; `nil` for a null key.
    public var key: ArraySlice<UInt8>? { self.slot.key.map { self.storage.bytes[$0] } }

    /// The value's bytes; `nil` for a null value (a tombstone).
    public var value: ArraySlice<UInt8>? { self.slot.value.map { self.storage.bytes[$0] } }

    /// Calls `body` with the key's bytes (`nil` for a null key) without copying or slicing them.
    public func withUnsafeKeyBytes<Result>(_ body: (UnsafeRawBufferPointer?) throws -> Result) rethrows -> Result {
        guard let range = self.slot.key else { return try body(nil) }
        return try self.storage.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// The number of bytes of key and value, used for memory budgets.
    public var byteCount: Int { (self.slot.key?.count ?? 0) + (self.slot.value?.count ?? 0) }

    /// The record's headers, in the order they were produced.
    public var headers: [KafkaHeader] {
        Array(self.storage.headers[self.slot.headers])
    }
}

/// The payloads of one poll batch: keys and values back to back, copied once out of librdkafka, and the
/// headers of all its records.
final class KafkaBatchStorage: Sendable {
    /// Where one record's parts live in the storage.
    struct RecordSlot: Sendable {
        var key: Range<Int>?
        var value: Range<Int>?
        var headers: Range<Int>
    }

    let bytes: [UInt8]
    let headers: [KafkaHeader]

    init(bytes: [UInt8], headers: [KafkaHeader]) {
        self.bytes = bytes
        self.headers = headers
    }
}
