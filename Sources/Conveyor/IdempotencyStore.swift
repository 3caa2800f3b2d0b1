import Foundation
import Synchronization

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
    func complete(_ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date) async throws
    /// Gives up `owner`'s claim of `key`, so that a retry can claim it again.
    func release(_ key: String, owner: String) async throws
    /// Removes completed keys whose time to live ended, and expired claims; returns how many.
    func purgeExpired(now: Date) async throws -> Int
}

/// An idempotency store in this process's memory, bounded to `capacity` keys (the oldest completed keys go first):
/// for tests and single-process use. It does not survive a restart and is not shared between processes.
public final class MemoryIdempotencyStore: IdempotencyStore {
    private enum State: Sendable {
        case inProgress(owner: String, until: Date)
        case completed(payloadHash: String, until: Date)
    }

    private struct Keys {
        var states: [String: State] = [:]
        /// Completed keys in completion order, for eviction.
        var completionOrder: [String] = []
        var head = 0
    }

    /// The most keys kept.
    public let capacity: Int
    private let keys = Mutex(Keys())

    /// A store of at most `capacity` keys.
    public init(capacity: Int = 100_000) {
        self.capacity = max(1, capacity)
    }

    public func claim(_ key: String, payloadHash: String, owner: String, lease: Duration, now: Date) async throws -> IdempotencyClaim {
        self.keys.withLock { keys in
            switch keys.states[key] {
            case .completed(let hash, let until) where until > now:
                return .completed(payloadHash: hash)
            case .inProgress(let holder, let until) where until > now && holder != owner:
                return .inProgress(until: until)
            default:
                keys.states[key] = .inProgress(owner: owner, until: now + lease.timeInterval)
                return .claimed
            }
        }
    }

    public func complete(_ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date) async throws {
        self.keys.withLock { keys in
            keys.states[key] = .completed(payloadHash: payloadHash, until: now + ttl.timeInterval)
            keys.completionOrder.append(key)
            while keys.states.count > self.capacity, keys.head < keys.completionOrder.count {
                let oldest = keys.completionOrder[keys.head]
                keys.head += 1
                if case .completed = keys.states[oldest] {
                    keys.states[oldest] = nil
                }
            }
            if keys.head > 1_024, keys.head * 2 > keys.completionOrder.count {
                keys.completionOrder.removeFirst(keys.head)
                keys.head = 0
            }
        }
    }

    public func release(_ key: String, owner: String) async throws {
        self.keys.withLock { keys in
            if case .inProgress(let holder, _) = keys.states[key], holder == owner {
                keys.states[key] = nil
            }
        }
    }

    public func purgeExpired(now: Date) async throws -> Int {
        self.keys.withLock { keys in
            let expired = keys.states.filter { _, state in
                switch state {
                case .completed(_, let until), .inProgress(_, let until): until <= now
                }
            }.keys
            for key in expired {
                keys.states[key] = nil
            }
            return expired.count
        }
    }
}

extension Duration {
    /// The duration in seconds, for `Date` arithmetic.
    var timeInterval: TimeInterval {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}
