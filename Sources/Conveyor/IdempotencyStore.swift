import Foundation

/// What a claim of an idempotency key found.
public enum IdempotencyClaim: Sendable, Equatable {
    /// The caller holds the key now, until its lease ends: it may run the handler.
    case claimed
    /// The key's effect happened already, for a payload with this hash.
    case completed(payloadHash: String)
    /// Another owner holds the key under a live lease, until this time.
    case inProgress(until: Date)
}

/// Where a deployment keeps its idempotency keys: claimed (`in-progress` with a lease) before a handler runs,
/// `completed` (with a time to live and the payload's hash) after it succeeded, released when it failed.
///
/// Keys arrive scoped by handler (`<handler>/<key>`), so two handlers of one event never collide.
public protocol IdempotencyStore: Sendable {
    /// Claims `key` for `owner` until `now + lease`, unless it is completed and not expired, or held by another
    /// owner under a live lease. An expired lease (a process that died) may be taken over.
    func claim(_ key: String, payloadHash: String, owner: String, lease: Duration, now: Date) async throws -> IdempotencyClaim
    /// Marks `key` completed for `payloadHash` until `now + ttl`.
    ///
    /// With `effects`, the statements run and the key completes in one transaction, and only while `owner` still
    /// holds the claim: otherwise nothing of it happens and the call throws
    /// ``ConveyorError/Code/idempotencyClaimLost``. A store without a database throws
    /// ``ConveyorError/Code/configuration``.
    func complete(
        _ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date, effects: [EffectStatement]
    ) async throws
    /// Gives up `owner`'s claim of `key`, so that a retry can claim it again.
    func release(_ key: String, owner: String) async throws
    /// Removes completed keys whose time to live ended, and expired claims; returns how many.
    func purgeExpired(now: Date) async throws -> Int
    /// Runs statements that create what handlers' transactional effects write to (`CREATE TABLE IF NOT EXISTS`
    /// ...), at start-up. A store without a database throws ``ConveyorError/Code/configuration``.
    func prepare(schema: [String]) async throws
    /// Runs a query on the store's database, for read models that transactional effects keep: the rows, each as
    /// its columns' values. A store without a database throws ``ConveyorError/Code/configuration``.
    func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [[SQLValue]]
    /// Closes the store's connections, once nothing uses it any more. Default: nothing to close.
    func close() async
}

extension IdempotencyStore {
    /// Nothing to close.
    public func close() async {}

    /// Marks `key` completed for `payloadHash` until `now + ttl`, without effects of its own.
    public func complete(_ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date) async throws {
        try await self.complete(key, payloadHash: payloadHash, owner: owner, ttl: ttl, now: now, effects: [])
    }
}

extension Duration {
    /// The duration in seconds, for `Date` arithmetic.
    var timeInterval: TimeInterval {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}
