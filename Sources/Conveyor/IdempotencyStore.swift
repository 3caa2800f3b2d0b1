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

/// One claim of a batch (``IdempotencyStore/claim(_:)``).
public struct ClaimRequest: Sendable {
    /// The key, scoped by handler.
    public var key: String
    /// The hash of the record's payload.
    public var payloadHash: String
    /// The process claiming it.
    public var owner: String
    /// How long the claim holds.
    public var lease: Duration
    /// The time of the claim.
    public var now: Date

    /// A claim of `key` for `owner` until `now + lease`.
    public init(key: String, payloadHash: String, owner: String, lease: Duration, now: Date) {
        self.key = key
        self.payloadHash = payloadHash
        self.owner = owner
        self.lease = lease
        self.now = now
    }
}

/// One completion of a batch (``IdempotencyStore/complete(_:)``), with the record's transactional effects.
public struct CompletionRequest: Sendable {
    /// The key, scoped by handler.
    public var key: String
    /// The hash of the record's payload.
    public var payloadHash: String
    /// The process that holds the claim.
    public var owner: String
    /// How long the completed key is remembered.
    public var ttl: Duration
    /// The time of the completion.
    public var now: Date
    /// The record's transactional effect: statements that commit with the completion (none without one).
    public var effects: [EffectStatement]

    /// A completion of `key` until `now + ttl`, with `effects`.
    public init(key: String, payloadHash: String, owner: String, ttl: Duration, now: Date, effects: [EffectStatement] = []) {
        self.key = key
        self.payloadHash = payloadHash
        self.owner = owner
        self.ttl = ttl
        self.now = now
        self.effects = effects
    }
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
    /// Claims several keys at once (distinct keys; a database store answers them in one batch): one result per
    /// request, in order, each as ``claim(_:payloadHash:owner:lease:now:)`` would give it.
    func claim(_ requests: [ClaimRequest]) async -> [Result<IdempotencyClaim, any Error>]
    /// Completes several keys at once (distinct keys; a database store writes them in one batch): one result per
    /// request, in order, each as ``complete(_:payloadHash:owner:ttl:now:effects:)`` would give it.
    func complete(_ requests: [CompletionRequest]) async -> [Result<Void, any Error>]
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

    /// One claim after the other.
    public func claim(_ requests: [ClaimRequest]) async -> [Result<IdempotencyClaim, any Error>] {
        await oneAfterTheOther(requests) {
            try await self.claim($0.key, payloadHash: $0.payloadHash, owner: $0.owner, lease: $0.lease, now: $0.now)
        }
    }

    /// One completion after the other.
    public func complete(_ requests: [CompletionRequest]) async -> [Result<Void, any Error>] {
        await oneAfterTheOther(requests) {
            try await self.complete($0.key, payloadHash: $0.payloadHash, owner: $0.owner, ttl: $0.ttl, now: $0.now, effects: $0.effects)
        }
    }

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

/// `operation` for each request in turn: one result per request, in order.
private func oneAfterTheOther<Request, Value>(
    _ requests: [Request], _ operation: (Request) async throws -> Value
) async -> [Result<Value, any Error>] {
    var results: [Result<Value, any Error>] = []
    results.reserveCapacity(requests.count)
    for request in requests {
        do {
            results.append(.success(try await operation(request)))
        } catch {
            results.append(.failure(error))
        }
    }
    return results
}
