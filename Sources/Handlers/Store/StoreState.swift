import Synchronization

/// What the store's handlers have done in this process, for queries and the `conveyor dev` summary.
public final class StoreState: Sendable {
    /// Totals of one customer, as the `order-stats` read model keeps them.
    public struct CustomerStats: Sendable, Hashable {
        /// Orders seen.
        public var orders = 0
        /// Sum of their totals, in cents.
        public var totalCents = 0
    }

    private struct State {
        var reserved: [String: Int] = [:]
        var charged: [String: Int] = [:]
        var paymentAttempts = 0
        var shipments = 0
        var customers: [String: CustomerStats] = [:]
        var countedOrders: Set<String> = []
    }

    /// The state shared by the store handlers of this process.
    public static let shared = StoreState()

    private let state = Mutex(State())

    /// Stock reserved per SKU.
    public var reserved: [String: Int] { self.state.withLock { $0.reserved } }
    /// Orders charged, with their amounts in cents.
    public var charged: [String: Int] { self.state.withLock { $0.charged } }
    /// Payment attempts, including refused ones.
    public var paymentAttempts: Int { self.state.withLock { $0.paymentAttempts } }
    /// Shipment requests published.
    public var shipments: Int { self.state.withLock { $0.shipments } }

    /// The `order-stats` read model: orders and totals per customer.
    public var customers: [String: CustomerStats] { self.state.withLock { $0.customers } }

    func reserve(_ order: OrderCreated) {
        self.state.withLock { state in
            for line in order.lines {
                state.reserved[line.sku, default: 0] += line.quantity
            }
        }
    }

    /// Counts a payment attempt, refused or not.
    func attemptPayment() {
        self.state.withLock { $0.paymentAttempts += 1 }
    }

    func charge(_ order: OrderCreated) {
        self.state.withLock { $0.charged[order.orderID] = order.totalCents }
    }

    func shipped() {
        self.state.withLock { $0.shipments += 1 }
    }

    /// Adds an order to the read model once, however often it is redelivered.
    func count(_ order: OrderCreated) {
        self.state.withLock { state in
            guard state.countedOrders.insert(order.orderID).inserted else { return }
            state.customers[order.customerID, default: CustomerStats()].orders += 1
            state.customers[order.customerID, default: CustomerStats()].totalCents += order.totalCents
        }
    }
}
