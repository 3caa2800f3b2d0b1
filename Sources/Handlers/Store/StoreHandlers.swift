import Conveyor
import Foundation

/// `inventory`: reserves the stock of every order line.
public struct InventoryHandler: Handler {
    public static let name = "inventory"
    public let topics = [OrderCreated.topic]

    public init() {}

    public func handle(_ record: Record, context: HandlerContext) async throws {
        let order = try record.decode(as: OrderCreated.self)
        StoreState.shared.reserve(order)
    }
}

/// A refusal of the payment provider that may succeed later.
public struct PaymentDeclinedTemporarily: Error, CustomStringConvertible {
    /// The order concerned.
    public var orderID: String
    public var description: String { "payment provider busy for order \(self.orderID); try again" }
}

/// `payments`: charges the order's total. The simulated provider refuses `paymentFailures` times first.
public struct PaymentsHandler: Handler {
    public static let name = "payments"
    public let topics = [OrderCreated.topic]

    public init() {}

    public func handle(_ record: Record, context: HandlerContext) async throws {
        let order = try record.decode(as: OrderCreated.self)
        StoreState.shared.attemptPayment()
        // The provider answers after a few milliseconds, like a remote call.
        try await Task.sleep(for: .milliseconds(2))
        guard context.attempt > order.paymentFailures else {
            throw PaymentDeclinedTemporarily(orderID: order.orderID)
        }
        StoreState.shared.charge(order)
    }
}

/// `shipping`: asks for the order to be shipped by publishing `ShipmentRequested` to topic `shipments`.
public struct ShippingHandler: Handler {
    public static let name = "shipping"
    public let topics = [OrderCreated.topic]

    public init() {}

    public func handle(_ record: Record, context: HandlerContext) async throws {
        let order = try record.decode(as: OrderCreated.self)
        let shipment = ShipmentRequested(orderID: order.orderID, customerID: order.customerID, lines: order.lines)
        try await context.publish(
            topic: ShipmentRequested.topic,
            key: Array(order.customerID.utf8),
            value: Array(try JSONEncoder().encode(shipment)),
            headers: [.init(name: "order-id", string: order.orderID)]
        )
        StoreState.shared.shipped()
    }
}

/// The store's handlers, for an executable's registry.
public let storeHandlers: [any Handler.Type] = [
    InventoryHandler.self, PaymentsHandler.self, ShippingHandler.self, OrderStatsHandler.self,
]
