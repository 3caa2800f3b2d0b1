internal import CRdKafka

/// The configuration of a Kafka client (consumer, producer or admin).
///
/// Common options are typed; any other librdkafka property (see librdkafka's `CONFIGURATION.md`) passes through
/// ``properties`` and is checked by librdkafka itself when it is set: an unknown property or a bad value is
/// rejected with librdkafka's message and the property's name. Pass-through properties win over typed options.
public struct KafkaConfiguration: Sendable {
    /// How a consumer group spreads partitions over its members. All members of a group must agree.
    public enum AssignmentStrategy: String, Sendable, CaseIterable {
        /// Incremental rebalancing: members keep the partitions they are not asked to give up (the default).
        case cooperativeSticky = "cooperative-sticky"
        /// Eager rebalancing by ranges of partitions per topic.
        case range
        /// Eager rebalancing, partitions dealt round-robin.
        case roundRobin = "roundrobin"
    }

    /// Where a consumer group starts on a partition that has no committed offset.
    public enum OffsetReset: String, Sendable, CaseIterable {
        /// The oldest record still retained.
        case earliest
        /// Only records produced from now on.
        case latest
        /// Fail with an error instead of guessing.
        case error
    }

    /// `bootstrap.servers`: comma-separated `host:port` list of brokers to contact first. Required.
    public var bootstrapServers: String
    /// `client.id`, shown in broker logs. Default `conveyor`.
    public var clientID: String = "conveyor"
    /// `group.id`: the consumer group. Required for consumers, ignored by producers.
    public var groupID: String?
    /// `partition.assignment.strategy`. Default ``AssignmentStrategy/cooperativeSticky``.
    public var assignmentStrategy: AssignmentStrategy = .cooperativeSticky
    /// `auto.offset.reset`. Default ``OffsetReset/earliest``, so that nothing produced before a group's first
    /// start is skipped.
    public var offsetReset: OffsetReset = .earliest
    /// `session.timeout.ms`: how long a silent member stays in its group. Default 45 s (librdkafka's).
    public var sessionTimeout: Duration = .seconds(45)
    /// `heartbeat.interval.ms`. Default 3 s (librdkafka's).
    public var heartbeatInterval: Duration = .seconds(3)
    /// How long a client waits for a first answer from any broker before failing with
    /// ``KafkaError/Code/brokersUnreachable``. Not a librdkafka property. Default 10 s.
    public var connectTimeout: Duration = .seconds(10)
    /// The most records a consumer's poll thread hands over in one batch. Not a librdkafka property.
    /// Default 1,024.
    public var pollBatchSize: Int = 1024

    /// Whether a consumer reads record headers. Not a librdkafka property. Default `true`.
    ///
    /// librdkafka 2.0.2 parses a header list (an allocation and a free) for every record that has a header
    /// section, even an empty one; a consumer that never looks at headers saves that work by turning this off,
    /// and its records then have no headers.
    public var readsHeaders: Bool = true

    /// librdkafka properties set as given, after (and over) the typed options. Set them with ``set(_:_:)``,
    /// which validates them.
    public private(set) var properties: [String: String] = [:]

    /// Creates a configuration, validating every pass-through property.
    ///
    /// - Throws: ``KafkaError/Code/configuration`` naming the first property librdkafka rejects.
    public init(bootstrapServers: String, groupID: String? = nil, properties: [String: String] = [:]) throws {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            try self.set(name, value)
        }
    }

    /// Sets a librdkafka property after checking it with librdkafka.
    ///
    /// - Throws: ``KafkaError/Code/configuration`` with librdkafka's message and the property's name.
    public mutating func set(_ name: String, _ value: String) throws {
        let probe = NativeConfiguration()
        try probe.set(name, value)
        self.properties[name] = value
    }

    /// Every property this configuration gives librdkafka, typed options first, then pass-through ones.
    /// Typed consumer options are left out for other clients, which would only warn about them.
    func librdkafkaProperties(consumer: Bool) -> [(String, String)] {
        var result: [(String, String)] = [
            ("bootstrap.servers", self.bootstrapServers),
            ("client.id", self.clientID),
        ]
        if consumer {
            result += [
                ("partition.assignment.strategy", self.assignmentStrategy.rawValue),
                ("auto.offset.reset", self.offsetReset.rawValue),
                ("session.timeout.ms", String(self.sessionTimeout.milliseconds)),
                ("heartbeat.interval.ms", String(self.heartbeatInterval.milliseconds)),
            ]
            if let groupID = self.groupID {
                result.append(("group.id", groupID))
            }
        }
        result.append(contentsOf: self.properties.sorted { $0.key < $1.key })
        return result
    }

    /// Checks what librdkafka cannot check property by property, then builds the native configuration.
    /// `defaults` are set first, so the user's properties win over them; `required` are set last, after checking
    /// that the user did not set them to something else.
    func makeNative(consumer: Bool, defaults: [(String, String)] = [], required: [(String, String)] = []) throws
        -> NativeConfiguration
    {
        let properties = self.librdkafkaProperties(consumer: consumer)
        for (name, value) in required {
            if let given = properties.last(where: { $0.0 == name })?.1, given != value {
                throw KafkaError(.configuration, "\(name): must be \(value) for this client, got \(given)")
            }
        }
        guard !self.bootstrapServers.allSatisfy(\.isWhitespace) else {
            throw KafkaError(.configuration, "bootstrap.servers: is empty; give at least one host:port")
        }
        guard self.connectTimeout > .zero else {
            throw KafkaError(.configuration, "connectTimeout: must be positive, got \(self.connectTimeout)")
        }
        guard self.pollBatchSize > 0 else {
            throw KafkaError(.configuration, "pollBatchSize: must be positive, got \(self.pollBatchSize)")
        }
        let native = NativeConfiguration()
        for (name, value) in defaults + properties + required {
            try native.set(name, value)
        }
        return native
    }
}

// MARK: - Native configuration

/// Owns a `rd_kafka_conf_t` until `rd_kafka_new` takes it over.
final class NativeConfiguration {
    /// The configuration; `nil` once ``release()`` handed it to `rd_kafka_new`.
    private(set) var pointer: OpaquePointer?

    init() {
        self.pointer = rd_kafka_conf_new()
    }

    deinit {
        if let pointer = self.pointer {
            rd_kafka_conf_destroy(pointer)
        }
    }

    /// Sets one property, translating librdkafka's refusal into an error that names it.
    func set(_ name: String, _ value: String) throws {
        var errorText = [CChar](repeating: 0, count: 512)
        let result = rd_kafka_conf_set(self.pointer, name, value, &errorText, errorText.count)
        guard result == RD_KAFKA_CONF_OK else {
            let reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(.configuration, "\(name): \(reason)")
        }
    }

    /// Hands the configuration over to librdkafka (after a successful `rd_kafka_new`), which then frees it.
    func release() {
        self.pointer = nil
    }
}

// MARK: - Duration helpers

extension Duration {
    /// Whole milliseconds, rounded down, saturating at `Int32.max` (librdkafka takes `int` timeouts).
    var milliseconds: Int32 {
        let (seconds, attoseconds) = self.components
        let value = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: value)
    }
}
