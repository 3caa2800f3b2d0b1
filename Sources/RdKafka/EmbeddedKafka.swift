internal import CRdKafka
import Logging

/// A Kafka cluster served by librdkafka's mock cluster: a real implementation of the Kafka protocol, with N
/// brokers listening on 127.0.0.1, run by a thread of this process until the value is released.
///
/// Clients in this and other processes (`kcat`, other `conveyor` processes) connect to ``bootstrapServers``.
/// It is the broker for development, examples and tests, with fault injection for the tests. See
/// `ENVIRONMENT.md` for what the mock of librdkafka 2.0.2 does not do (no compaction, bounded retention, no
/// admin requests: create topics with ``createTopic(_:partitions:replicationFactor:)``).
///
/// `@unchecked Sendable`: every `rd_kafka_mock_*` call used here posts an operation to the mock cluster's own
/// thread and waits for it; librdkafka makes them safe to call from any thread. The pointer is immutable.
public final class EmbeddedKafka: @unchecked Sendable {
    private let host: KafkaClient
    private let cluster: OpaquePointer
    /// The `bootstrap.servers` string of the cluster's brokers, such as `127.0.0.1:40123,127.0.0.1:40125`.
    public let bootstrapServers: String
    /// The brokers' ids, from 1.
    public let brokerIDs: [Int32]

    /// Starts a cluster of `brokers` brokers on 127.0.0.1.
    public init(brokers: Int = 1, logger: Logger = Logger(label: "conveyor.embedded-kafka")) throws {
        guard (1...32).contains(brokers) else {
            throw KafkaError(.invalidArgument, "brokers: must be between 1 and 32, got \(brokers)")
        }
        // The mock cluster is hosted by a client handle of its own, which never connects anywhere.
        let native = NativeConfiguration()
        try native.set("log_level", "3")
        let label = try KafkaConfiguration(bootstrapServers: "embedded")
        self.host = try KafkaClient(kind: RD_KAFKA_PRODUCER, configuration: label, native: native, logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(self.host.pointer, Int32(brokers)) else {
            throw KafkaError(.other, "cannot start the embedded Kafka cluster (rd_kafka_mock_cluster_new failed)")
        }
        self.cluster = cluster
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.brokerIDs = (1...Int32(brokers)).map { $0 }
    }

    deinit {
        // Before the host handle (a stored property) is destroyed.
        rd_kafka_mock_cluster_destroy(self.cluster)
    }

    /// Creates a topic. Topics that clients merely name are auto-created with 4 partitions; create them first to
    /// choose the count.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        guard !name.isEmpty, partitions > 0, replicationFactor > 0, replicationFactor <= self.brokerIDs.count else {
            throw KafkaError(
                .invalidArgument,
                "create topic '\(name)': needs a name, partitions > 0 and 1...\(self.brokerIDs.count) replicas, "
                    + "got \(partitions) partitions and \(replicationFactor) replicas"
            )
        }
        try self.check(
            rd_kafka_mock_topic_create(self.cluster, name, Int32(partitions), Int32(replicationFactor)),
            "create topic '\(name)'"
        )
    }

    /// Takes a broker down: its connections close and it refuses new ones until ``setBrokerUp(_:)``.
    public func setBrokerDown(_ broker: Int32) throws {
        try self.check(rd_kafka_mock_broker_set_down(self.cluster, try self.validated(broker)), "broker \(broker) down")
    }

    /// Brings a broker back up.
    public func setBrokerUp(_ broker: Int32) throws {
        try self.check(rd_kafka_mock_broker_set_up(self.cluster, try self.validated(broker)), "broker \(broker) up")
    }

    /// Delays every answer of a broker by `roundTripTime`.
    public func setRoundTripTime(broker: Int32, _ roundTripTime: Duration) throws {
        try self.check(
            rd_kafka_mock_broker_set_rtt(self.cluster, try self.validated(broker), roundTripTime.milliseconds),
            "broker \(broker) round-trip time"
        )
    }

    /// Makes the next requests of kind `api` fail, one error per request, in order, on every broker.
    public func pushRequestErrors(_ api: KafkaAPIKey, _ errors: [KafkaError.Code]) throws {
        let raw = try errors.map { code in
            guard let value = code.rawValue else {
                throw KafkaError(.invalidArgument, "inject error \(code): has no Kafka error code")
            }
            return rd_kafka_resp_err_t(rawValue: value)
        }
        raw.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(self.cluster, api.rawValue, buffer.count, buffer.baseAddress)
        }
    }

    /// Moves the leadership of a partition to `broker`.
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws {
        try self.check(
            rd_kafka_mock_partition_set_leader(self.cluster, topic, partition, try self.validated(broker)),
            "leader of \(topic)[\(partition)]"
        )
    }

    /// Makes `broker` the coordinator of a consumer group.
    public func setGroupCoordinator(group: String, broker: Int32) throws {
        try self.check(
            rd_kafka_mock_coordinator_set(self.cluster, "group", group, try self.validated(broker)),
            "coordinator of group '\(group)'"
        )
    }

    private func validated(_ broker: Int32) throws -> Int32 {
        guard self.brokerIDs.contains(broker) else {
            throw KafkaError(.invalidArgument, "broker \(broker): no such broker; the ids are \(self.brokerIDs)")
        }
        return broker
    }

    private func check(_ result: rd_kafka_resp_err_t, _ context: String) throws {
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.translate(result, context: context)
        }
    }
}

/// The Kafka protocol requests the embedded cluster can be told to fail.
public enum KafkaAPIKey: Int16, Sendable, CaseIterable {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case leaveGroup = 13
    case syncGroup = 14
    case apiVersions = 18
    case initProducerID = 22
}
