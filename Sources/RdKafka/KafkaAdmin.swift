internal import CRdKafka
import Dispatch
import Logging

/// Read-only cluster queries: partitions of a topic, watermarks, and a group's committed offsets (lag).
///
/// Each query blocks inside librdkafka, so it runs on the admin's own dispatch queue, never on Swift's
/// cooperative pool. Every query waits at most the configuration's `connectTimeout`.
public final class KafkaAdmin: Sendable {
    private let client: KafkaClient
    private let logger: Logger
    private let queue = DispatchQueue(label: "conveyor.kafka-admin")

    /// Creates an admin client.
    public init(configuration: KafkaConfiguration, logger: Logger) throws {
        let native = try configuration.makeNative(consumer: false)
        self.client = try KafkaClient(kind: RD_KAFKA_PRODUCER, configuration: configuration, native: native, logger: logger)
        self.logger = logger
    }

    private var timeout: Int32 { self.client.configuration.connectTimeout.milliseconds }

    /// The partition numbers of `topic`.
    ///
    /// - Throws: ``KafkaError/Code/unknownTopicOrPartition`` if the topic does not exist.
    public func partitions(of topic: String) async throws -> [Int32] {
        try await self.blocking { [client, timeout] in
            guard let handle = rd_kafka_topic_new(client.pointer, topic, nil) else {
                throw KafkaError(.invalidArgument, "topic '\(topic)': librdkafka refused the name")
            }
            defer { rd_kafka_topic_destroy(handle) }
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let result = rd_kafka_metadata(client.pointer, 0, handle, &metadata, timeout)
            defer { metadata.map { rd_kafka_metadata_destroy($0) } }
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata, metadata.pointee.topic_cnt > 0 else {
                throw KafkaError.translate(result, context: "metadata of topic '\(topic)'")
            }
            let entry = metadata.pointee.topics[0]
            guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.translate(entry.err, context: "metadata of topic '\(topic)'")
            }
            return (0..<Int(entry.partition_cnt)).map { entry.partitions[$0].id }.sorted()
        }
    }

    /// The low (oldest retained) and high (next to be written) offsets of a partition.
    public func watermarks(of partition: TopicPartition) async throws -> (low: Int64, high: Int64) {
        try await self.blocking { [client, timeout] in
            var low: Int64 = 0
            var high: Int64 = 0
            let result = rd_kafka_query_watermark_offsets(
                client.pointer, partition.topic, partition.partition, &low, &high, timeout
            )
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.translate(result, context: "watermarks of \(partition)")
            }
            return (low, high)
        }
    }

    /// The offsets `group` has committed for `partitions` (the next record to consume); `nil` where nothing is
    /// committed. Does not join the group.
    public func committedOffsets(
        group: String,
        partitions: [TopicPartition]
    ) async throws -> [TopicPartition: Int64?] {
        var reading = self.client.configuration
        reading.groupID = group
        let configuration = reading
        let logger = self.logger
        return try await self.blocking { [timeout] in
            let native = try configuration.makeNative(consumer: true)
            let reader = try KafkaClient(kind: RD_KAFKA_CONSUMER, configuration: configuration, native: native, logger: logger)
            let list = PartitionList(partitions)
            let result = rd_kafka_committed(reader.pointer, list.pointer, timeout)
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.translate(result, context: "committed offsets of group '\(group)'")
            }
            var offsets: [TopicPartition: Int64?] = [:]
            for (entry, _) in list.entries {
                offsets[entry.topicPartition] = entry.offset >= 0 ? entry.offset : nil
            }
            return offsets
        }
    }

    /// How many records of each partition of `topic` the group has not committed yet.
    public func lag(group: String, topic: String) async throws -> [TopicPartition: Int64] {
        let partitions = try await self.partitions(of: topic).map { TopicPartition(topic, $0) }
        let committed = try await self.committedOffsets(group: group, partitions: partitions)
        var lag: [TopicPartition: Int64] = [:]
        for partition in partitions {
            let (low, high) = try await self.watermarks(of: partition)
            lag[partition] = high - max(low, (committed[partition] ?? nil) ?? low)
        }
        return lag
    }

    private func blocking<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            self.queue.async {
                continuation.resume(with: Swift.Result { try body() })
            }
        }
    }
}
