internal import CRdKafka
import Logging
import Synchronization

/// A Kafka producer.
///
/// Every record gets a delivery report: ``send(_:)`` awaits it, ``enqueue(_:onDelivery:)`` calls back with it.
/// A dedicated thread serves the reports. When librdkafka's local queue is full, ``send(_:)`` waits for
/// deliveries to make room (backpressure) and ``enqueue(_:onDelivery:)`` throws
/// ``KafkaError/Code/queueFull``; neither crashes nor drops the record.
public final class KafkaProducer: Sendable {
    private let core: ProducerCore

    /// Creates a producer and starts the thread that serves its delivery reports.
    ///
    /// - Throws: ``KafkaError/Code/configuration`` naming the property when the configuration is not valid.
    public init(configuration: KafkaConfiguration, logger: Logger) throws {
        let native = try configuration.makeNative(consumer: false)
        rd_kafka_conf_set_dr_msg_cb(native.pointer) { _, message, opaque in
            guard let message else { return }
            ProducerCore.deliver(message)
            ClientContext.of(opaque)?.handler?.delivered()
        }
        let client = try KafkaClient(kind: RD_KAFKA_PRODUCER, configuration: configuration, native: native, logger: logger)
        let core = ProducerCore(client: client)
        client.context.handler = core
        try PollThread.start(name: "conveyor-produce") { core.run() }
        self.core = core
    }

    deinit {
        self.core.stop(flushTimeout: .zero, completion: nil)
    }

    /// Waits until some broker answers, up to the configuration's `connectTimeout`.
    ///
    /// - Throws: ``KafkaError/Code/brokersUnreachable`` naming `bootstrap.servers` and the last connection error.
    public func checkConnectivity() async throws {
        try await self.core.onPollThread { try $0.client.waitForBrokers() }
    }

    /// Queues a record; `onDelivery` is called once, on the producer's thread, when it was written or failed.
    ///
    /// - Throws: ``KafkaError/Code/queueFull`` when the local queue is full (try again after some delivery),
    ///   ``KafkaError/Code/closed`` after ``close(timeout:)``, or another error naming the topic; `onDelivery` is
    ///   then never called.
    public func enqueue(
        _ message: KafkaProducerMessage,
        onDelivery: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    ) throws {
        try self.core.produce(message, onDelivery: onDelivery)
    }

    /// Queues a record like ``enqueue(_:onDelivery:)``, but waits for room while the local queue is full
    /// instead of throwing ``KafkaError/Code/queueFull``.
    public func produce(
        _ message: KafkaProducerMessage,
        onDelivery: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    ) async throws {
        while true {
            let generation = self.core.deliveryGeneration
            do {
                return try self.core.produce(message, onDelivery: onDelivery)
            } catch let error as KafkaError where error.code == .queueFull {
                await self.core.waitForDelivery(after: generation)
            }
        }
    }

    /// Produces a record and waits for its delivery report, waiting for room when the local queue is full.
    public func send(_ message: KafkaProducerMessage) async throws -> KafkaDeliveryReport {
        let delivery = DeliveryResult()
        try await self.produce(message) { delivery.complete($0) }
        return try await delivery.value
    }

    /// Waits until every queued record was delivered or failed, up to `timeout`.
    ///
    /// - Throws: ``KafkaError/Code/timedOut`` with the number of records still queued.
    public func flush(timeout: Duration) async throws {
        try await self.core.onPollThread { core in
            let result = rd_kafka_flush(core.client.pointer, timeout.milliseconds)
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.translate(
                    result,
                    context: "flush",
                    reason: "\(rd_kafka_outq_len(core.client.pointer)) records still queued after \(timeout)"
                )
            }
        }
    }

    /// Delivers what it can within `timeout`, fails the delivery of the rest with ``KafkaError/Code/closed``
    /// (their callbacks are called, their senders resume),
    /// and stops the producer's thread. Closing a closed producer does nothing.
    public func close(timeout: Duration = .seconds(10)) async {
        await withCheckedContinuation { continuation in
            self.core.stop(flushTimeout: timeout) { continuation.resume() }
        }
    }
}

// MARK: - Delivery result

/// One delivery report that a task awaits while the producer's thread may already have set it.
private final class DeliveryResult: Sendable {
    private enum State {
        case waiting(CheckedContinuation<KafkaDeliveryReport, any Error>?)
        case done(Result<KafkaDeliveryReport, KafkaError>)
    }

    private let state = Mutex(State.waiting(nil))

    func complete(_ result: Result<KafkaDeliveryReport, KafkaError>) {
        let waiter: CheckedContinuation<KafkaDeliveryReport, any Error>? = self.state.withLock { state in
            guard case .waiting(let waiter) = state else { return nil }
            state = .done(result)
            return waiter
        }
        waiter?.resume(with: result.mapError { $0 as any Error })
    }

    var value: KafkaDeliveryReport {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<KafkaDeliveryReport, KafkaError>? = self.state.withLock { state in
                    switch state {
                    case .done(let result): return result
                    case .waiting: state = .waiting(continuation); return nil
                    }
                }
                if let ready {
                    continuation.resume(with: ready.mapError { $0 as any Error })
                }
            }
        }
    }
}

// MARK: - Core

/// The state a producer shares with its thread and its C callbacks.
final class ProducerCore: Sendable {
    typealias Command = @Sendable (ProducerCore) -> Void

    /// Boxes a record's delivery callback through librdkafka's per-message opaque pointer.
    private final class Delivery: Sendable {
        let completion: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
        init(_ completion: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) {
            self.completion = completion
        }
    }

    private struct State {
        var commands: [Command] = []
        var isStopping = false
        /// Counts delivery reports, so that a sender can wait for the next one without missing it.
        var generation: UInt64 = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let client: KafkaClient
    private let state = Mutex(State())

    init(client: KafkaClient) {
        self.client = client
    }

    var deliveryGeneration: UInt64 { self.state.withLock { $0.generation } }

    /// The producer's thread: serves delivery reports and runs commands until stopped.
    func run() {
        while true {
            let (commands, stopping) = self.state.withLock { state in
                defer { state.commands.removeAll() }
                return (state.commands, state.isStopping)
            }
            for command in commands {
                command(self)
            }
            if stopping && commands.isEmpty {
                return
            }
            rd_kafka_poll(self.client.pointer, 100)
        }
    }

    func onPollThread<Result: Sendable>(_ body: @escaping @Sendable (ProducerCore) throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let sent = self.state.withLock { state in
                guard !state.isStopping else { return false }
                state.commands.append { core in continuation.resume(with: Swift.Result { try body(core) }) }
                return true
            }
            if sent {
                rd_kafka_yield(self.client.pointer)
            } else {
                continuation.resume(throwing: KafkaError(.closed, "the producer is closed"))
            }
        }
    }

    func produce(
        _ message: KafkaProducerMessage,
        onDelivery: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    ) throws {
        guard !self.state.withLock({ $0.isStopping }) else {
            throw KafkaError(.closed, "the producer is closed; cannot produce to \(message.topic)")
        }
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                if let value = header.value {
                    _ = value.withUnsafeBytes { rd_kafka_header_add(headers, header.name, -1, $0.baseAddress, $0.count) }
                } else {
                    rd_kafka_header_add(headers, header.name, -1, nil, 0)
                }
            }
        }
        // The box is released by the delivery callback, or below if librdkafka refuses the record.
        let delivery = Unmanaged.passRetained(Delivery(onDelivery)).toOpaque()
        let result = (message.key ?? []).withUnsafeBytes { key in
            (message.value ?? []).withUnsafeBytes { value in
                conveyor_produce(
                    self.client.pointer,
                    message.topic,
                    message.partition ?? conveyor_partition_unassigned(),
                    key.baseAddress,
                    key.count,
                    message.key == nil ? 0 : 1,
                    value.baseAddress,
                    value.count,
                    message.value == nil ? 0 : 1,
                    headers,
                    delivery
                )
            }
        }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            // librdkafka took neither the headers nor the record.
            Unmanaged<Delivery>.fromOpaque(delivery).release()
            if let headers {
                rd_kafka_headers_destroy(headers)
            }
            throw KafkaError.translate(result, context: "produce to \(message.topic)")
        }
    }

    /// Calls the delivery callback of a reported message (from `dr_msg_cb`, on the producer's thread).
    static func deliver(_ message: UnsafePointer<rd_kafka_message_t>) {
        guard let opaque = message.pointee._private else { return }
        let delivery = Unmanaged<Delivery>.fromOpaque(opaque).takeRetainedValue()
        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            delivery.completion(.success(
                KafkaDeliveryReport(topic: topic, partition: message.pointee.partition, offset: message.pointee.offset)
            ))
        } else {
            let reason = rd_kafka_message_errstr(message).map { String(cString: $0) }
            delivery.completion(.failure(
                KafkaError.translate(message.pointee.err, context: "deliver to \(topic)", reason: reason)
            ))
        }
    }

    /// Suspends until a delivery report arrives after `generation` (or the producer stops).
    func waitForDelivery(after generation: UInt64) async {
        await withCheckedContinuation { continuation in
            let ready = self.state.withLock { state in
                guard state.generation == generation, !state.isStopping else { return true }
                state.waiters.append(continuation)
                return false
            }
            if ready {
                continuation.resume()
            }
        }
    }

    /// Flushes for up to `flushTimeout`, fails what is left, and stops the thread; then calls `completion`.
    func stop(flushTimeout: Duration, completion: (@Sendable () -> Void)?) {
        let command: Command = { core in
            let pointer = core.client.pointer
            rd_kafka_flush(pointer, flushTimeout.milliseconds)
            // What could not be delivered is failed, not forgotten: purge reports each record as failed.
            rd_kafka_purge(pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            rd_kafka_poll(pointer, 0)
            let waiters = core.state.withLock { state in
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            waiters.forEach { $0.resume() }
            completion?()
        }
        let accepted = self.state.withLock { state in
            guard !state.isStopping else { return false }
            state.isStopping = true
            state.commands.append(command)
            return true
        }
        if accepted {
            rd_kafka_yield(self.client.pointer)
        } else {
            completion?()
        }
    }
}

extension ProducerCore: ClientEventHandler {
    func rebalance(_: OpaquePointer, _: rd_kafka_resp_err_t, _: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {}
    func committed(_: rd_kafka_resp_err_t, _: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {}

    func delivered() {
        let waiters = self.state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
