internal import CRdKafka

/// Owns a `rd_kafka_topic_partition_list_t` and converts it to and from Swift values.
final class PartitionList {
    /// The list; destroyed in `deinit`.
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// Takes ownership of a list librdkafka gave us.
    init(owning pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.pointer = pointer
    }

    /// A new list of partitions with no offsets.
    convenience init(_ partitions: some Collection<TopicPartition>) {
        self.init(owning: rd_kafka_topic_partition_list_new(Int32(clamping: partitions.count)))
        for partition in partitions {
            rd_kafka_topic_partition_list_add(self.pointer, partition.topic, partition.partition)
        }
    }

    /// A new list of partitions with offsets.
    convenience init(_ offsets: some Collection<TopicPartitionOffset>) {
        self.init(owning: rd_kafka_topic_partition_list_new(Int32(clamping: offsets.count)))
        for entry in offsets {
            let element = rd_kafka_topic_partition_list_add(
                self.pointer,
                entry.topicPartition.topic,
                entry.topicPartition.partition
            )
            element?.pointee.offset = entry.offset
        }
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(self.pointer)
    }

    /// Calls `body` with each element of a list librdkafka still owns (for example in a rebalance callback).
    static func forEach(
        in list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        _ body: (rd_kafka_topic_partition_t) -> Void
    ) {
        guard let list, let elements = list.pointee.elems else { return }
        for index in 0..<Int(list.pointee.cnt) {
            body(elements[index])
        }
    }

    /// The partitions of a list librdkafka still owns.
    static func partitions(in list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
        var result: [TopicPartition] = []
        Self.forEach(in: list) { result.append(TopicPartition(String(cString: $0.topic), $0.partition)) }
        return result
    }

    /// The partitions of this list.
    var partitions: [TopicPartition] { Self.partitions(in: self.pointer) }

    /// The partitions and offsets of this list, with each element's error (if any).
    var entries: [(TopicPartitionOffset, rd_kafka_resp_err_t)] {
        var result: [(TopicPartitionOffset, rd_kafka_resp_err_t)] = []
        Self.forEach(in: self.pointer) {
            result.append((TopicPartitionOffset(String(cString: $0.topic), $0.partition, offset: $0.offset), $0.err))
        }
        return result
    }
}
