import Synchronization

/// What the store's handlers have done in this process, for queries and the `conveyor dev` summary.
public final class StoreState: Sendable {
    private struct State {
        var reserved: [String: Int] = [:]
        var charged: [String: Int] = [:]
        var paymentAttempts = 0
        var shipments = 0
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
}
