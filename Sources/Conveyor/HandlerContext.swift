import Logging
import RdKafka

/// What a handler gets with each record besides the record itself.
public struct HandlerContext: Sendable {
    private let environment: HandlerEnvironment
    /// Where the record is, for the logger (not the record itself: its bytes need not be kept alive for this).
    private let position: RecordPosition
    /// The attempt number for this record, from 1.
    public let attempt: Int
    /// The record's claim of its idempotency key, when it runs under one.
    private var claim: KeyClaim?

    init(environment: HandlerEnvironment, record: Record, attempt: Int) {
        self.environment = environment
        self.position = RecordPosition(topic: record.topic, partition: record.partition, offset: record.offset)
        self.attempt = attempt
    }

    /// This context, for a record running under `claim`.
    func claiming(_ claim: KeyClaim) -> HandlerContext {
        var context = self
        context.claim = claim
        return context
    }

    /// The record's idempotency key, and transactional effects that commit with its completion.
    public var idempotency: IdempotencyContext {
        IdempotencyContext(claim: self.claim, handler: self.environment.handler)
    }

    /// A logger whose metadata names the handler and the record (`topic[partition]@offset`).
    public var logger: Logger {
        var logger = self.environment.logger
        logger[metadataKey: "record"] = "\(self.position)"
        return logger
    }

    /// Publishes a follow-up event and waits until Kafka has it.
    @discardableResult
    public func publish(
        topic: String,
        key: [UInt8]? = nil,
        value: [UInt8]?,
        headers: [KafkaHeader] = []
    ) async throws -> KafkaDeliveryReport {
        try await self.environment.producer.send(
            KafkaProducerMessage(topic: topic, key: key, value: value, headers: headers)
        )
    }
}

/// `topic[partition]@offset` of a record.
struct RecordPosition: Sendable, CustomStringConvertible {
    let topic: String
    let partition: Int32
    let offset: Int64

    var description: String { "\(self.topic)[\(self.partition)]@\(self.offset)" }
}

/// What every record of one handler shares: its logger and the process's producer (one reference per context,
/// not one per part).
final class HandlerEnvironment: Sendable {
    /// The handler's name.
    let handler: String
    let logger: Logger
    let producer: KafkaProducer

    init(handler: String, logger: Logger, producer: KafkaProducer) {
        self.handler = handler
        self.logger = logger
        self.producer = producer
    }
}
