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
/// Records of one poll batch share one storage, so that handing a record over costs no allocation per record;
/// ``key`` and ``value`` are views into its buffer. A record itself is small (its partition, offset, and where
/// the rest lives), so that the runtime copies it cheaply from the poll thread to a worker.
public struct KafkaRecord: Sendable {
    /// The partition the record was read from.
    public let partition: Int32
    /// The record's position in its batch's storage.
    @usableFromInline let index: Int32
    /// The record's offset in its partition.
    public let offset: Int64
    @usableFromInline let storage: KafkaBatchStorage
    /// The record's topic's position in its batch's storage.
    @usableFromInline let topicIndex: Int32

    /// The record in slot `index` of `storage`, whose topic is `storage.topics[topicIndex]` (given, not read from
    /// the slot: reading the storage's arrays here would cost reference counting per record).
    init(partition: Int32, offset: Int64, storage: KafkaBatchStorage, index: Int, topicIndex: Int) {
        self.partition = partition
        self.index = Int32(index)
        self.offset = offset
        self.storage = storage
        self.topicIndex = Int32(topicIndex)
    }

    @inlinable var slot: KafkaBatchStorage.RecordSlot { self.storage.slots[Int(self.index)] }

    /// The topic the record was read from.
    @inlinable public var topic: String { self.storage.topics[Int(self.topicIndex)] }

    /// Whether `other` was read from the same topic (cheaper than comparing ``topic``s within one batch).
    @inlinable public func hasSameTopic(as other: KafkaRecord) -> Bool {
        self.storage === other.storage ? self.topicIndex == other.topicIndex : self.topic == other.topic
    }

    /// The record's timestamp, when it has one.
    public var timestamp: KafkaTimestamp? { self.slot.timestamp }

    /// The record's partition.
    public var topicPartition: TopicPartition { TopicPartition(self.topic, self.partition) }

    /// The key's bytes; `nil` for a null key.
    public var key: ArraySlice<UInt8>? { self.slot.key.map { self.storage.bytes[$0] } }

    /// The value's bytes; `nil` for a null value (a tombstone).
    public var value: ArraySlice<UInt8>? { self.slot.value.map { self.storage.bytes[$0] } }

    /// Calls `body` with the key's bytes (`nil` for a null key) without copying or slicing them.
    @inlinable
    public func withUnsafeKeyBytes<Result>(_ body: (UnsafeRawBufferPointer?) throws -> Result) rethrows -> Result {
        try self.withUnsafeBytes(in: self.slot.key, body)
    }

    /// Calls `body` with the value's bytes (`nil` for a null value) without copying or slicing them.
    @inlinable
    public func withUnsafeValueBytes<Result>(_ body: (UnsafeRawBufferPointer?) throws -> Result) rethrows -> Result {
        try self.withUnsafeBytes(in: self.slot.value, body)
    }

    /// Calls `body` with the batch's bytes in `range` (`nil` for no range).
    @inlinable
    func withUnsafeBytes<Result>(in range: Range<Int>?, _ body: (UnsafeRawBufferPointer?) throws -> Result) rethrows -> Result {
        guard let range else { return try body(nil) }
        return try self.storage.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// The number of bytes of key and value, used for memory budgets.
    @inlinable public var byteCount: Int { self.slot.byteCount }

    /// The record's headers, in the order they were produced.
    public var headers: [KafkaHeader] {
        Array(self.storage.headers[self.slot.headers])
    }
}

/// The contents of one poll batch: keys and values back to back, copied once out of librdkafka, the headers of
/// all its records, their topics, and where each record's parts are.
@usableFromInline final class KafkaBatchStorage: Sendable {
    /// Where one record's parts live in the storage, its topic and its timestamp.
    @usableFromInline struct RecordSlot: Sendable {
        @usableFromInline var key: Range<Int>?
        @usableFromInline var value: Range<Int>?
        @usableFromInline var headers: Range<Int>
        /// Its topic's position in ``KafkaBatchStorage/topics`` (which the record keeps too).
        var topic: Int
        @usableFromInline var timestamp: KafkaTimestamp?

        init(key: Range<Int>?, value: Range<Int>?, headers: Range<Int>, topic: Int, timestamp: KafkaTimestamp?) {
            self.key = key
            self.value = value
            self.headers = headers
            self.topic = topic
            self.timestamp = timestamp
        }

        @inlinable var byteCount: Int { (self.key?.count ?? 0) + (self.value?.count ?? 0) }
    }

    @usableFromInline let bytes: [UInt8]
    @usableFromInline let headers: [KafkaHeader]
    @usableFromInline let topics: [String]
    @usableFromInline let slots: [RecordSlot]

    init(bytes: [UInt8], headers: [KafkaHeader], topics: [String], slots: [RecordSlot]) {
        self.bytes = bytes
        self.headers = headers
        self.topics = topics
        self.slots = slots
    }
}
