import Logging
import RdKafka

/// What a handler gets with each record besides the record itself.
public struct HandlerContext: Sendable {
    /// A logger whose metadata names the handler, topic, partition and offset.
    public let logger: Logger
    /// The attempt number for this record, from 1.
    public let attempt: Int
    /// The producer for follow-up events, shared by the process.
    private let producer: KafkaProducer

    init(logger: Logger, attempt: Int, producer: KafkaProducer) {
        self.logger = logger
        self.attempt = attempt
        self.producer = producer
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
