import Logging
import RdKafka

/// What a handler gets with each record besides the record itself.
public struct HandlerContext: Sendable {
    private let handlerLogger: Logger
    private let record: Record
    /// The attempt number for this record, from 1.
    public let attempt: Int
    /// The producer for follow-up events, shared by the process.
    private let producer: KafkaProducer

    init(logger: Logger, record: Record, attempt: Int, producer: KafkaProducer) {
        self.handlerLogger = logger
        self.record = record
        self.attempt = attempt
        self.producer = producer
    }

    /// A logger whose metadata names the handler and the record (`topic[partition]@offset`).
    public var logger: Logger {
        var logger = self.handlerLogger
        logger[metadataKey: "record"] = "\(self.record.position)"
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
        try await self.producer.send(KafkaProducerMessage(topic: topic, key: key, value: value, headers: headers))
    }
}
