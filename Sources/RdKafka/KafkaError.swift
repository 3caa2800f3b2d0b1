internal import CRdKafka

/// The one error type of the `RdKafka` module.
///
/// librdkafka's error codes are translated into a ``Code``; the original librdkafka name and reason are kept in
/// ``message`` so that nothing is lost, but callers switch on ``code`` and ``isRetryable``.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short, stable name such as `queue-full`.
        public let name: String
        /// The librdkafka error code this code stands for, when there is exactly one.
        let rawValue: Int32?

        private init(_ name: String, _ rawValue: rd_kafka_resp_err_t? = nil) {
            self.name = name
            self.rawValue = rawValue?.rawValue
        }

        public var description: String { self.name }

        public static func == (lhs: Code, rhs: Code) -> Bool { lhs.name == rhs.name }
        public func hash(into hasher: inout Hasher) { hasher.combine(self.name) }

        // MARK: - Configuration and usage

        /// A configuration property is unknown, has a bad value, or a required one is missing.
        public static let configuration = Code("configuration", RD_KAFKA_RESP_ERR__INVALID_ARG)
        /// An argument passed to a call is not valid (for example a negative partition count).
        public static let invalidArgument = Code("invalid-argument", RD_KAFKA_RESP_ERR__INVALID_ARG)
        /// The client was closed; no further operation is possible.
        public static let closed = Code("closed", RD_KAFKA_RESP_ERR__DESTROY)
        /// An offset was stored or committed for a partition this consumer does not own (any more).
        public static let partitionNotAssigned = Code("partition-not-assigned", RD_KAFKA_RESP_ERR__STATE)

        // MARK: - Connectivity and time

        /// No broker could be reached.
        public static let brokersUnreachable = Code("brokers-unreachable", RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        /// A connection failed or was closed.
        public static let transport = Code("transport", RD_KAFKA_RESP_ERR__TRANSPORT)
        /// A host name could not be resolved.
        public static let resolve = Code("resolve", RD_KAFKA_RESP_ERR__RESOLVE)
        /// An operation did not finish in time.
        public static let timedOut = Code("timed-out", RD_KAFKA_RESP_ERR__TIMED_OUT)

        // MARK: - Producing

        /// The producer's local queue is full: wait for deliveries, then try again (backpressure).
        public static let queueFull = Code("queue-full", RD_KAFKA_RESP_ERR__QUEUE_FULL)
        /// A message is larger than the configured maximum.
        public static let messageTooLarge = Code("message-too-large", RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        /// The message could not be delivered within `message.timeout.ms`.
        public static let messageTimedOut = Code("message-timed-out", RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)

        // MARK: - Broker answers

        /// The topic or partition does not exist.
        public static let unknownTopicOrPartition = Code(
            "unknown-topic-or-partition", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
        )
        /// The broker is not the leader of the partition (leadership moved).
        public static let notLeaderForPartition = Code(
            "not-leader-for-partition", RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
        )
        /// The partition has no leader at the moment.
        public static let leaderNotAvailable = Code("leader-not-available", RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
        /// The broker did not answer a request in time.
        public static let requestTimedOut = Code("request-timed-out", RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
        /// The group coordinator is not available.
        public static let coordinatorNotAvailable = Code(
            "coordinator-not-available", RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE
        )
        /// The broker asked is not the group coordinator.
        public static let notCoordinator = Code("not-coordinator", RD_KAFKA_RESP_ERR_NOT_COORDINATOR)
        /// The group is rebalancing.
        public static let rebalanceInProgress = Code("rebalance-in-progress", RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
        /// The member's group generation is no longer current: the group rebalanced meanwhile.
        public static let staleGeneration = Code("stale-generation", RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
        /// The requested offset is outside the partition's log.
        public static let offsetOutOfRange = Code("offset-out-of-range", RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
        /// The client is not allowed to do this.
        public static let notAuthorized = Code("not-authorized", RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        /// An unrecoverable client error: the client must be closed and created anew.
        public static let fatal = Code("fatal", RD_KAFKA_RESP_ERR__FATAL)
        /// Any other librdkafka error; ``KafkaError/message`` carries librdkafka's name for it.
        public static let other = Code("other")

        /// The codes that map one librdkafka code each, for translation.
        static let translated: [Code] = [
            .closed, .partitionNotAssigned, .brokersUnreachable, .transport, .resolve, .timedOut, .queueFull,
            .messageTooLarge, .messageTimedOut, .unknownTopicOrPartition, .notLeaderForPartition,
            .leaderNotAvailable, .requestTimedOut, .coordinatorNotAvailable, .notCoordinator,
            .rebalanceInProgress, .staleGeneration, .offsetOutOfRange, .notAuthorized, .fatal,
        ]
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable explanation naming the property, topic, partition or broker concerned.
    public let message: String
    /// Whether trying the same operation again later may succeed.
    public let isRetryable: Bool
    /// The source file that raised the error.
    public let file: String
    /// The source line that raised the error.
    public let line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        isRetryable: Bool = false,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.isRetryable = isRetryable
        self.file = file
        self.line = line
    }

    public var description: String {
        "KafkaError(\(self.code)): \(self.message)"
    }
}

// MARK: - Translation from librdkafka

extension KafkaError {
    /// librdkafka codes after which the same call may succeed later.
    private static let retryableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE,
        RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
        RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH, RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH,
        RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
    ].map(\.rawValue).reduce(into: Set<Int32>()) { $0.insert($1) }

    /// Translates a librdkafka error code, with the context of what was being done.
    static func translate(
        _ error: rd_kafka_resp_err_t,
        context: String,
        reason: String? = nil,
        file: String = #fileID,
        line: Int = #line
    ) -> KafkaError {
        let purged = error == RD_KAFKA_RESP_ERR__PURGE_QUEUE || error == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
        let code = purged ? .closed : Code.translated.first { $0.rawValue == error.rawValue } ?? .other
        let name = String(cString: rd_kafka_err2name(error))
        let detail = reason ?? String(cString: rd_kafka_err2str(error))
        return KafkaError(
            code,
            "\(context): \(detail) (\(name))",
            isRetryable: Self.retryableCodes.contains(error.rawValue),
            file: file,
            line: line
        )
    }

    /// Takes ownership of a `rd_kafka_error_t`, translates it and destroys it.
    static func consume(_ error: OpaquePointer, context: String, file: String = #fileID, line: Int = #line)
        -> KafkaError
    {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        let reason = String(cString: rd_kafka_error_string(error))
        var translated = KafkaError.translate(code, context: context, reason: reason, file: file, line: line)
        if rd_kafka_error_is_retriable(error) != 0 && !translated.isRetryable {
            translated = KafkaError(translated.code, translated.message, isRetryable: true, file: file, line: line)
        }
        return translated
    }
}
