import Foundation
import Synchronization

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

    /// Marks `key` completed. The memory store has no database: it refuses `effects`.
    public func complete(
        _ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date, effects: [EffectStatement]
    ) async throws {
        guard effects.isEmpty else { throw Self.noDatabase }
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

    /// Refuses: the memory store has no database for handlers' tables (a handler without a schema is fine).
    public func prepare(schema: [String]) async throws {
        guard schema.isEmpty else { throw Self.noDatabase }
    }

    /// Refuses: the memory store has no database.
    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [[SQLValue]] {
        throw Self.noDatabase
    }

    private static var noDatabase: ConveyorError {
        ConveyorError(
            .configuration,
            "idempotency.store memory:// has no database for transactional effects; use sqlite:// or postgres://"
        )
    }
}
