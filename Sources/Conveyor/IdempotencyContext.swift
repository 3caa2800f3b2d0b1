import Foundation
import Synchronization

/// A record's claim of its idempotency key while its handler runs, with the transactional effects the handler
/// gave (written with the key's completion once the handler returned).
final class KeyClaim: Sendable {
    /// The key, scoped by handler (`<handler>/<key>`).
    let key: String
    private let transaction = Mutex<[EffectStatement]?>(nil)

    init(key: String) {
        self.key = key
    }

    /// The statements of the record's transactional effect (none without one).
    var effects: [EffectStatement] {
        self.transaction.withLock { $0 ?? [] }
    }

    /// Keeps a transaction's statements; `false` if the record has one already.
    func keep(_ statements: [EffectStatement]) -> Bool {
        self.transaction.withLock { transaction in
            guard transaction == nil else { return false }
            transaction = statements
            return true
        }
    }
}

/// The record's idempotency key, as its handler sees it (``HandlerContext/idempotency``).
public struct IdempotencyContext: Sendable {
    let claim: KeyClaim?
    let handler: String

    /// The key the record runs under (scoped by handler: `<handler>/<key>`), or `nil` when it runs without one.
    public var key: String? { self.claim?.key }

    /// Gives the statements `body` collects to the transaction that marks the record's key completed, so that the
    /// effect and the completion commit together or not at all: exactly one effect per key, even if the process
    /// dies between the handler and the commit of its offset. The statements write to the idempotency store's own
    /// database (SQLite or PostgreSQL), in tables the handler creates with ``Handler/storeSchema``.
    ///
    /// The transaction commits after the handler returned (with the completions of other records, in one batch of
    /// the store); the record is finished only once it did. If the handler throws afterwards, nothing of it is
    /// written. If a statement fails, the record is retried; if this process no longer holds the claim (its lease
    /// ended and another process took the key over), nothing is written and the record waits for the key like
    /// any duplicate; if the store cannot be reached, the record waits and its partition pauses, as for claims.
    /// One transaction per record.
    ///
    /// - Throws: when the record has no idempotency key (it is then dead-lettered, reason
    ///   `missing-idempotency-key`), or it has a transaction already.
    public func transaction(_ body: (inout EffectTransaction) throws -> Void) throws {
        guard let claim = self.claim else {
            throw IdempotencyError.missingKey(
                "transactional effects of handler \(self.handler) need an idempotency key "
                    + "(handlers.\(self.handler).idempotency or Handler.idempotency)"
            )
        }
        var transaction = EffectTransaction()
        try body(&transaction)
        guard claim.keep(transaction.statements) else {
            throw ConveyorError(.configuration, "idempotency key \(claim.key): one transaction per record")
        }
    }
}
