import Foundation
import RdKafka

/// A record as a handler sees it.
public struct Record: Sendable {
    let kafka: KafkaRecord

    init(_ kafka: KafkaRecord) {
        self.kafka = kafka
    }

    /// The topic it was read from.
    public var topic: String { self.kafka.topic }
    /// Its partition.
    public var partition: Int32 { self.kafka.partition }
    /// Its offset in the partition.
    public var offset: Int64 { self.kafka.offset }
    /// The key's bytes; `nil` for a null key.
    public var key: [UInt8]? { self.kafka.key.map(Array.init) }
    /// The value's bytes; `nil` for a null value.
    public var value: [UInt8]? { self.kafka.value.map(Array.init) }
    /// The headers, in order.
    public var headers: [KafkaHeader] { self.kafka.headers }
    /// The timestamp, when the record has one.
    public var timestamp: KafkaTimestamp? { self.kafka.timestamp }

    /// The first header named `name`, as UTF-8 text.
    public func header(_ name: String) -> String? {
        self.headers.first { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Decodes the value as JSON.
    ///
    /// - Throws: ``ConveyorError/Code/decodeFailed`` (not retryable) naming the type, the record and the reason.
    public func decode<Value: Decodable>(as type: Value.Type = Value.self) throws -> Value {
        guard let value = self.kafka.value else {
            throw ConveyorError(.decodeFailed, "\(self.position): null value, expected \(Value.self) as JSON")
        }
        do {
            return try JSONDecoder().decode(Value.self, from: Data(value))
        } catch {
            throw ConveyorError(.decodeFailed, "\(self.position): not a \(Value.self) in JSON: \(error)")
        }
    }

    /// `topic[partition]@offset`, for messages.
    public var position: String {
        RecordPosition(topic: self.topic, partition: self.partition, offset: self.offset).description
    }
}
