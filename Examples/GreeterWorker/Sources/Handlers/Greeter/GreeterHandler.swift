import Conveyor

/// `greeter`: greets every name published on topic `names`, on topic `greetings`.
public struct GreeterHandler: Handler {
    public static let name = "greeter"
    public let topics = ["names"]

    public init() {}

    public func handle(_ record: Record, context: HandlerContext) async throws {
        let name = record.value.map { String(decoding: $0, as: UTF8.self) } ?? "stranger"
        try await context.publish(topic: "greetings", key: record.key, value: Array("Hello, \(name)!".utf8))
    }
}
