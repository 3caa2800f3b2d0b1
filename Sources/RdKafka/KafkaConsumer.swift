internal import CRdKafka
import Logging

/// A Kafka consumer in a consumer group.
///
/// The consumer owns a dedicated poll thread: it reads records in batches and hands them to its
/// ``KafkaConsumerDelegate``, applies rebalances (telling the delegate which partitions it gets and which it is
/// about to lose, before they are released), and runs every other operation: no other thread touches the
/// librdkafka handle, and poll and close never run concurrently.
///
/// Offsets are never stored automatically (`enable.auto.offset.store=false`): store them with
/// ``KafkaConsumerControl/store(_:)`` once their records are finished, and commit them.
public final class KafkaConsumer: Sendable {
    private let loop: ConsumerLoop

    /// Creates a consumer and starts its poll thread. Nothing is read until ``subscribe(_:)``.
    ///
    /// - Throws: ``KafkaError/Code/configuration`` naming the property when the configuration is not valid for a
    ///   consumer (for example without `group.id`).
    public init(configuration: KafkaConfiguration, delegate: any KafkaConsumerDelegate, logger: Logger) throws {
        guard let groupID = configuration.groupID, !groupID.isEmpty else {
            throw KafkaError(.configuration, "group.id: a consumer needs a consumer group; set groupID")
        }
        let native = try configuration.makeNative(
            consumer: true,
            defaults: [("enable.auto.commit", "false")],
            required: [("enable.auto.offset.store", "false")]
        )
        rd_kafka_conf_set_rebalance_cb(native.pointer) { client, error, partitions, opaque in
            guard let client else { return }
            guard let handler = ClientContext.of(opaque)?.handler else {
                // The consumer is being destroyed: apply the change so that librdkafka can finish.
                KafkaConsumer.applyWithoutHandler(client, error, partitions)
                return
            }
            handler.rebalance(client, error, partitions)
        }
        rd_kafka_conf_set_offset_commit_cb(native.pointer) { _, error, offsets, opaque in
            ClientContext.of(opaque)?.handler?.committed(error, offsets)
        }
        let client = try KafkaClient(kind: RD_KAFKA_CONSUMER, configuration: configuration, native: native, logger: logger)
        // Serve logs, errors and callbacks from the consumer queue, that is from the poll thread.
        rd_kafka_poll_set_consumer(client.pointer)
        let loop = ConsumerLoop(client: client, delegate: delegate, logger: logger)
        client.context.handler = loop
        try PollThread.start(name: "conveyor-poll") { loop.run() }
        self.loop = loop
    }

    deinit {
        _ = self.loop.send { loop in _ = loop.close() }
    }

    /// Joins the group and subscribes to `topics`, after checking that a broker answers.
    ///
    /// - Throws: ``KafkaError/Code/brokersUnreachable`` if no broker answered within the configuration's
    ///   `connectTimeout`.
    public func subscribe(_ topics: [String]) async throws {
        guard !topics.isEmpty else {
            throw KafkaError(.invalidArgument, "subscribe: no topic given")
        }
        try await self.onPollThread { try $0.subscribe(topics) }
    }

    /// Runs `body` on the poll thread with the consumer's control, between two poll batches.
    ///
    /// Use it to pause, resume, store, commit or read the assignment from outside the delegate.
    public func perform<Result: Sendable>(
        _ body: @escaping @Sendable (KafkaConsumerControl) throws -> Result
    ) async throws -> Result {
        try await self.onPollThread { try body(KafkaConsumerControl(loop: $0)) }
    }

    /// Commits the stored offsets and waits for the broker's answer.
    public func commit() async throws {
        try await self.perform { try $0.commit() }
    }

    /// Leaves the group cleanly: the delegate is asked to finish the assigned partitions (``KafkaConsumerDelegate``
    /// `willRevoke`), the group is left, and the poll thread stops. Closing a closed consumer does nothing.
    public func close() async throws {
        let result: Result<Void, KafkaError>? = try? await self.onPollThread { $0.close() }
        try result?.get()
    }

    private func onPollThread<Result: Sendable>(
        _ body: @escaping @Sendable (ConsumerLoop) throws -> Result
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let sent = self.loop.send { loop in
                continuation.resume(with: Swift.Result { try body(loop) })
            }
            if !sent {
                continuation.resume(throwing: KafkaError(.closed, "the consumer is closed"))
            }
        }
    }

    /// Applies an assignment change when no handler is left to do it.
    private static func applyWithoutHandler(
        _ client: OpaquePointer,
        _ error: rd_kafka_resp_err_t,
        _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    ) {
        let assigning = error == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
        if String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE" {
            let failure = assigning
                ? rd_kafka_incremental_assign(client, partitions)
                : rd_kafka_incremental_unassign(client, partitions)
            if let failure {
                rd_kafka_error_destroy(failure)
            }
        } else {
            rd_kafka_assign(client, assigning ? partitions : nil)
        }
    }
}
