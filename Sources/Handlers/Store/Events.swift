/// A line of an order.
public struct OrderLine: Codable, Sendable, Hashable {
    /// The stock-keeping unit.
    public var sku: String
    /// How many.
    public var quantity: Int
    /// Price of one, in cents.
    public var unitPriceCents: Int

    /// Creates an order line.
    public init(sku: String, quantity: Int, unitPriceCents: Int) {
        self.sku = sku
        self.quantity = quantity
        self.unitPriceCents = unitPriceCents
    }
}

/// Published on topic `orders` when a customer places an order.
public struct OrderCreated: Codable, Sendable, Hashable {
    /// The order's id; also the record key's customer grouping is by ``customerID``.
    public var orderID: String
    /// Who ordered.
    public var customerID: String
    /// What was ordered.
    public var lines: [OrderLine]
    /// When, in milliseconds since 1970 (the embedded broker's timestamps are not real).
    public var createdAtMilliseconds: Int64
    /// How many times the payment provider will refuse before accepting (a simulated transient failure).
    public var paymentFailures: Int

    /// Creates an event.
    public init(orderID: String, customerID: String, lines: [OrderLine], createdAtMilliseconds: Int64, paymentFailures: Int = 0) {
        self.orderID = orderID
        self.customerID = customerID
        self.lines = lines
        self.createdAtMilliseconds = createdAtMilliseconds
        self.paymentFailures = paymentFailures
    }

    /// The order's total, in cents.
    public var totalCents: Int { self.lines.reduce(0) { $0 + $1.quantity * $1.unitPriceCents } }

    /// The topic `OrderCreated` events are published on.
    public static let topic = "orders"
}

/// Published on topic `shipments` by the `shipping` handler.
public struct ShipmentRequested: Codable, Sendable, Hashable {
    /// The order to ship.
    public var orderID: String
    /// Who receives it.
    public var customerID: String
    /// What to ship.
    public var lines: [OrderLine]

    /// The topic `ShipmentRequested` events are published on.
    public static let topic = "shipments"
}
