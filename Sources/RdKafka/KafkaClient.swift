internal import CRdKafka
import Logging
import Synchronization

/// Receives what librdkafka reports through the callbacks of one client.
///
/// librdkafka calls these from its own threads (logs, errors) or from inside a poll call on the client's poll
/// thread (rebalances, delivery reports, commit results); each implementation says which it relies on.
protocol ClientEventHandler: AnyObject, Sendable {
    /// A partition assignment change (consumers only); called on the poll thread, inside `rd_kafka_consumer_poll`
    /// or `rd_kafka_consumer_close`. The handler must apply the change with `rd_kafka_*assign`.
    func rebalance(_ client: OpaquePointer, _ error: rd_kafka_resp_err_t,
                   _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?)
    /// The result of an asynchronous offset commit (consumers only); called on the poll thread.
    func committed(_ error: rd_kafka_resp_err_t, _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?)
    /// A delivery report was handled (producers only); called on the poll thread.
    func delivered()
}

/// What the C callbacks of one `rd_kafka_t` reach through its opaque pointer.
final class ClientContext: Sendable {
    /// A weak reference: the handler owns the client, which owns this context.
    private struct WeakHandler {
        weak var value: (any ClientEventHandler)?
    }

    let logger: Logger
    private let handlerReference = Mutex(WeakHandler())
    /// The last error librdkafka reported through `error_cb`, used to explain connection failures.
    let lastError = Mutex<String?>(nil)

    init(logger: Logger) {
        self.logger = logger
    }

    /// Who receives the client's events; set once the handler exists, after the client was created.
    var handler: (any ClientEventHandler)? {
        get { self.handlerReference.withLock { $0.value } }
        set { self.handlerReference.withLock { $0.value = newValue } }
    }

    /// The context of a client, from inside one of its callbacks.
    static func of(_ opaque: UnsafeMutableRawPointer?) -> ClientContext? {
        opaque.map { Unmanaged<ClientContext>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// Owns one `rd_kafka_t`; destroys it in `deinit`.
///
/// `@unchecked Sendable`: librdkafka's client handle is thread-safe for every call this module makes from more
/// than one thread (`rd_kafka_produce*`, `rd_kafka_yield`, `rd_kafka_queue_yield`, metadata and watermark
/// queries). Calls that must not run concurrently (`rd_kafka_consumer_poll`, `rd_kafka_consumer_close`,
/// assignment changes) are made only by the client's poll thread, which the owning type guarantees.
final class KafkaClient: @unchecked Sendable {
    let pointer: OpaquePointer
    /// Kept alive for as long as the client: librdkafka holds an unretained pointer to it.
    let context: ClientContext
    /// The configuration it was created from.
    let configuration: KafkaConfiguration

    /// Creates a client. On success librdkafka owns `native`'s configuration; on failure it stays ours and is
    /// destroyed with `native`. Callbacks specific to the client's kind must already be set on `native`.
    init(
        kind: rd_kafka_type_t,
        configuration: KafkaConfiguration,
        native: NativeConfiguration,
        logger: Logger
    ) throws {
        let context = ClientContext(logger: logger)
        let conf = native.pointer
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf) { client, level, facility, message in
            guard let context = ClientContext.of(rd_kafka_opaque(client)) else { return }
            if level <= 3, let message {
                // Connection failures are logged from librdkafka's threads even while the poll thread is blocked;
                // keep the latest to explain a failed connection.
                context.lastError.withLock { $0 = String(cString: message) }
            }
            context.logger.log(
                level: Logger.Level(syslog: level),
                "librdkafka",
                metadata: [
                    "kafka.facility": "\(String(cString: facility!))",
                    "kafka.message": "\(String(cString: message!))",
                ]
            )
        }
        rd_kafka_conf_set_error_cb(conf) { _, error, reason, opaque in
            guard let context = ClientContext.of(opaque) else { return }
            let text = reason.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(rawValue: error)))
            context.lastError.withLock { $0 = text }
            context.logger.debug(
                "librdkafka error",
                metadata: ["kafka.error": "\(String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: error))))",
                           "kafka.reason": "\(text)"]
            )
        }
        var errorText = [CChar](repeating: 0, count: 512)
        guard let pointer = rd_kafka_new(kind, conf, &errorText, errorText.count) else {
            let reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(.configuration, "cannot create Kafka client: \(reason)")
        }
        native.release()
        self.pointer = pointer
        self.context = context
        self.configuration = configuration
    }

    deinit {
        rd_kafka_destroy(self.pointer)
    }

    /// Waits until some broker answers a metadata request, up to the configured connect timeout.
    ///
    /// Blocking: call it on a poll thread or a dedicated queue, never on the cooperative pool.
    func waitForBrokers() throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(self.pointer, 0, nil, &metadata, self.configuration.connectTimeout.milliseconds)
        if let metadata {
            rd_kafka_metadata_destroy(metadata)
        }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let last = self.context.lastError.withLock { $0 } ?? String(cString: rd_kafka_err2str(result))
            throw KafkaError(
                .brokersUnreachable,
                "no broker in bootstrap.servers '\(self.configuration.bootstrapServers)' answered within "
                    + "\(self.configuration.connectTimeout) (last error: \(last))",
                isRetryable: true
            )
        }
    }
}

// MARK: - Log levels

extension Logger.Level {
    /// Maps a syslog level, as librdkafka reports it, to a swift-log level.
    init(syslog level: Int32) {
        switch level {
        case ...2: self = .critical
        case 3: self = .error
        case 4: self = .warning
        case 5: self = .notice
        case 6: self = .info
        default: self = .debug
        }
    }
}
