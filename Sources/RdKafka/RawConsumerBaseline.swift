internal import CRdKafka
import Logging

/// librdkafka's own consume loop, written in C with no Conveyor code in the path: the baseline the benchmark
/// measures Conveyor's consumer against, in the same run, on the same broker, with the same settings.
public enum RawConsumerBaseline {
    /// What one baseline run consumed.
    public struct Result: Sendable {
        /// Records consumed, counting the first one.
        public var records: Int64
        /// Key and value bytes of those records.
        public var bytes: Int64
        /// From the first record's arrival to the last one's.
        public var elapsed: Duration
    }

    /// Subscribes to `topic` in the configuration's group, waits up to `firstRecordTimeout` for a first record,
    /// then consumes until `records` were read or none arrived for `idleTimeout`. Blocks the calling thread.
    public static func consume(
        configuration: KafkaConfiguration,
        topic: String,
        records: Int64,
        firstRecordTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(5),
        logger: Logger
    ) throws -> Result {
        guard configuration.groupID?.isEmpty == false else {
            throw KafkaError(.configuration, "group.id: the baseline consumer needs a consumer group")
        }
        let native = try configuration.makeNative(consumer: true, required: [("enable.auto.commit", "false")])
        let client = try KafkaClient(kind: RD_KAFKA_CONSUMER, configuration: configuration, native: native, logger: logger)
        rd_kafka_poll_set_consumer(client.pointer)
        let list = PartitionList([TopicPartition(topic, conveyor_partition_unassigned())])
        let subscribed = rd_kafka_subscribe(client.pointer, list.pointer)
        guard subscribed == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.translate(subscribed, context: "subscribe to \(topic)")
        }
        defer { rd_kafka_consumer_close(client.pointer) }

        let clock = ContinuousClock()
        let deadline = clock.now + firstRecordTimeout
        var bytes: Int64 = 0
        while clock.now < deadline {
            guard let message = rd_kafka_consumer_poll(client.pointer, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            bytes = Int64(message.pointee.len + message.pointee.key_len)
            let start = clock.now
            let rest = conveyor_baseline_consume(client.pointer, records - 1, idleTimeout.milliseconds, &bytes)
            return Result(records: rest + 1, bytes: bytes, elapsed: clock.now - start)
        }
        throw KafkaError(.timedOut, "baseline: no record of '\(topic)' arrived within \(firstRecordTimeout)")
    }
}
