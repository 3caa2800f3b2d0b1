import Foundation
import Synchronization

/// A record's claim of its idempotency key, while its handler runs.
final class KeyClaim: Sendable {
    let store: any IdempotencyStore
    /// The key, scoped by handler (`<handler>/<key>`).
    let key: String
    let payloadHash: String
    let owner: String
    let ttl: Duration
    /// Whether a transactional effect completed the key already.
    let isCompleted = Atomic<Bool>(false)

    init(store: any IdempotencyStore, key: String, payloadHash: String, owner: String, ttl: Duration) {
        self.store = store
        self.key = key
        self.payloadHash = payloadHash
        self.owner = owner
        self.ttl = ttl
    }
}

/// The record's idempotency key, as its handler sees it (``HandlerContext/idempotency``).
public struct IdempotencyContext: Sendable {
    let claim: KeyClaim?
    let handler: String

    /// The key the record runs under (scoped by handler: `<handler>/<key>`), or `nil` when it runs without one.
    public var key: String? { self.claim?.key }

    /// Runs the statements `body` collects in the transaction that marks the record's key completed, so that the
    /// effect and the completion commit together or not at all: exactly one effect per key, even if the process
    /// dies between the handler and the commit of its offset. The statements write to the idempotency store's own
    /// database (SQLite or PostgreSQL), in tables the handler creates with ``Handler/storeSchema``.
    ///
    /// Call it once per record, as the handler's last step (once it returns, the key is completed and a retry of
    /// the record is a duplicate). Nothing is written when this process no longer holds the claim (its lease ended
    /// and another process took the key over): the record then waits for the key like any duplicate.
    ///
    /// - Throws: when the record has no idempotency key (the record is dead-lettered, reason
    ///   `missing-idempotency-key`), the store has no database, a statement fails (the record is retried), or
    ///   the store cannot be reached (the record waits and its partition pauses, as for claims).
    public func transaction(_ body: (inout EffectTransaction) throws -> Void) async throws {
        guard let claim = self.claim else {
            throw IdempotencyError.missingKey(
                "transactional effects of handler \(self.handler) need an idempotency key "
                    + "(handlers.\(self.handler).idempotency or Handler.idempotency)"
            )
        }
        guard !claim.isCompleted.load(ordering: .acquiring) else {
            throw ConveyorError(.idempotencyStore, "idempotency key \(claim.key): one transaction per record, and it committed")
        }
        var transaction = EffectTransaction()
        try body(&transaction)
        do {
            try await claim.store.complete(
                claim.key, payloadHash: claim.payloadHash, owner: claim.owner, ttl: claim.ttl, now: Date(),
                effects: transaction.statements
            )
        } catch let error as ConveyorError where error.code == .idempotencyClaimLost {
            throw IdempotencyError.claimLost(key: claim.key)
        } catch let error as ConveyorError where error.code == .idempotencyStore && error.isRetryable {
            throw IdempotencyError.storeUnavailable(error)
        }
        claim.isCompleted.store(true, ordering: .releasing)
    }
}
