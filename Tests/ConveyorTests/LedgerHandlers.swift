import Conveyor
import ConveyorTestKit
import RdKafka

/// One handled record, as a ledger handler saw it.
struct LedgerEntry: Sendable, Hashable {
    var handler: String
    var topic: String
    var partition: Int32
    var offset: Int64
    var key: String?
    var value: String?
}

/// What the ledger handlers handled, in all tests of this process.
struct Ledger: Sendable, CustomStringConvertible {
    /// Every record handled, in completion order.
    var entries: [LedgerEntry] = []
    /// How many records each handler handled per topic, keyed `topic/handler`, so that waits stay cheap.
    var counts: [String: Int] = [:]

    func count(topic: String, handler: String? = nil) -> Int {
        if let handler {
            return self.counts["\(topic)/\(handler)", default: 0]
        }
        return self.counts.filter { $0.key.hasPrefix("\(topic)/") }.values.reduce(0, +)
    }

    func entries(topic: String) -> [LedgerEntry] {
        self.entries.filter { $0.topic == topic }
    }

    var description: String { "\(self.counts)" }
}

/// Every record the ledger handlers handled.
let ledger = AwaitableState(Ledger())

/// A handler that waits a random 0-2 ms and writes what it handled to ``ledger``.
protocol LedgerHandler: Handler {}

extension LedgerHandler {
    var topics: [String] { ["unused"] }

    func handle(_ record: Record, context: HandlerContext) async throws {
        try await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
        let entry = LedgerEntry(
            handler: Self.name, topic: record.topic, partition: record.partition, offset: record.offset,
            key: record.key.map { String(decoding: $0, as: UTF8.self) },
            value: record.value.map { String(decoding: $0, as: UTF8.self) }
        )
        ledger.update { ledger in
            ledger.entries.append(entry)
            ledger.counts["\(entry.topic)/\(entry.handler)", default: 0] += 1
        }
    }
}

struct InventoryLedger: LedgerHandler {
    static let name = "ledger-inventory"
}

struct PaymentsLedger: LedgerHandler {
    static let name = "ledger-payments"
}

struct ShippingLedger: LedgerHandler {
    static let name = "ledger-shipping"
}

/// The ledger handlers, as an executable would register them.
let ledgerRegistry: HandlerRegistry = try! HandlerRegistry([InventoryLedger.self, PaymentsLedger.self, ShippingLedger.self])
