import Conveyor
import Foundation

/// `order-stats`: a read model of orders and totals per customer, in table `order_stats` of the idempotency
/// store's database (SQLite or PostgreSQL). Each order is added in the transaction that completes its idempotency
/// key (the order ID), so it is counted exactly once however often it is redelivered, even if the process dies
/// between the write and the commit of its offset. Query it with ``OrderStatsHandler/customers(in:)``.
public struct OrderStatsHandler: Handler {
    public static let name = "order-stats"
    public let topics = [OrderCreated.topic]

    /// Keyed by order ID (``idempotencyKey(for:)``), unless the configuration says otherwise.
    public static var idempotency: IdempotencySettings? {
        var settings = IdempotencySettings()
        settings.key = .handler
        return settings
    }

    public static let storeSchema = [
        """
        CREATE TABLE IF NOT EXISTS order_stats (
            customer_id TEXT PRIMARY KEY, orders BIGINT NOT NULL, total_cents BIGINT NOT NULL
        )
        """,
    ]

    public init() {}

    /// The order's ID; `nil` for a payload that does not decode (the handler then dead-letters it as such).
    public func idempotencyKey(for record: Record) -> String? {
        (try? record.decode(as: OrderCreated.self))?.orderID
    }

    public func handle(_ record: Record, context: HandlerContext) async throws {
        let order = try record.decode(as: OrderCreated.self)
        try context.idempotency.transaction { transaction in
            transaction.execute(
                """
                INSERT INTO order_stats (customer_id, orders, total_cents) VALUES (?, 1, ?)
                ON CONFLICT (customer_id) DO UPDATE SET orders = order_stats.orders + 1,
                    total_cents = order_stats.total_cents + excluded.total_cents
                """,
                .text(order.customerID), .integer(Int64(order.totalCents))
            )
        }
    }

    /// Totals of one customer in the read model.
    public struct CustomerStats: Sendable, Hashable {
        /// Orders counted.
        public var orders: Int
        /// Sum of their totals, in cents.
        public var totalCents: Int
    }

    /// The read model: orders and totals per customer, as the store holds them now.
    public static func customers(in store: any IdempotencyStore) async throws -> [String: CustomerStats] {
        var customers: [String: CustomerStats] = [:]
        for row in try await store.query("SELECT customer_id, orders, total_cents FROM order_stats", []) {
            guard row.count == 3, let customer = row[0].text, let orders = row[1].integer, let total = row[2].integer
            else { continue }
            customers[customer] = CustomerStats(orders: Int(orders), totalCents: Int(total))
        }
        return customers
    }
}
