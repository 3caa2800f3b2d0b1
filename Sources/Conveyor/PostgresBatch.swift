import Foundation
import Logging
import PostgresNIO

/// One group-committed batch of key operations, written to PostgreSQL in one transaction: the transactional
/// effects first (each in a savepoint), then every plain completion in one statement, every release in one, every
/// claim in one, and one query for the state of the keys that could not be claimed.
///
/// The batch holds at most one operation per key (``GroupCommit``), so the order of the statements changes
/// nothing anyone sees. Rows are touched in key order, and a transaction that PostgreSQL aborts to break a
/// deadlock with another process's batch is run again.
struct PostgresBatch: Sendable {
    let operations: [KeyOperation]

    private static let attempts = 5

    /// Writes the batch; one result per operation, in order. When the transaction fails as a whole (the server is
    /// unreachable), every operation fails with ``ConveyorError/Code/idempotencyStore``.
    func write(on slot: PostgresConnectionSlot, logger: Logger) async -> [Result<IdempotencyClaim?, any Error>] {
        var attempt = 1
        while true {
            do {
                return try await slot.withConnection { connection in
                    try await connection.withTransaction(logger: logger) { connection in
                        try await self.apply(on: connection, logger: logger)
                    }
                }
            } catch {
                let state = (error as? PSQLError)?.serverInfo?[.sqlState]
                if attempt < Self.attempts, state == "40P01" || state == "40001" {
                    attempt += 1
                    continue
                }
                let failure = error as? ConveyorError
                    ?? ConveyorError(.idempotencyStore, "idempotency store: \(describe(error))", isRetryable: true)
                return self.operations.map { _ in .failure(failure) }
            }
        }
    }

    private func apply(on connection: PostgresConnection, logger: Logger) async throws -> [Result<IdempotencyClaim?, any Error>] {
        var results = [Result<IdempotencyClaim?, any Error>](repeating: .success(nil), count: self.operations.count)
        var completions: [(key: String, owner: String, hash: String, expires: Double)] = []
        var releases: [(key: String, owner: String)] = []
        var claims: [(index: Int, key: String, owner: String, hash: String, expires: Double)] = []
        var latest = Date.distantPast
        for (index, operation) in self.operations.enumerated() {
            switch operation {
            case .claim(let key, let hash, let owner, let lease, let now):
                claims.append((index, key, owner, hash, (now + lease.timeInterval).timeIntervalSince1970))
                latest = max(latest, now)
            case .complete(let key, let hash, let owner, let ttl, let now, let effects) where effects.isEmpty:
                completions.append((key, owner, hash, (now + ttl.timeInterval).timeIntervalSince1970))
            case .complete(let key, let hash, let owner, let ttl, let now, let effects):
                let expires = (now + ttl.timeInterval).timeIntervalSince1970
                results[index] = try await Self.completeWithEffects(
                    key: key, hash: hash, owner: owner, expires: expires, effects: effects, on: connection, logger: logger
                )
            case .release(let key, let owner):
                releases.append((key, owner))
            }
        }
        if !completions.isEmpty {
            completions.sort { $0.key < $1.key }
            try await connection.query("""
                INSERT INTO conveyor_idempotency_keys (key, completed, owner, payload_hash, expires_at)
                SELECT t.key, true, t.owner, t.hash, to_timestamp(t.expires)
                FROM unnest(\(completions.map(\.key))::text[], \(completions.map(\.owner))::text[],
                            \(completions.map(\.hash))::text[], \(completions.map(\.expires))::float8[])
                     AS t(key, owner, hash, expires)
                ON CONFLICT (key) DO UPDATE SET completed = true, owner = excluded.owner,
                    payload_hash = excluded.payload_hash, expires_at = excluded.expires_at
                """, logger: logger)
        }
        if !releases.isEmpty {
            releases.sort { $0.key < $1.key }
            try await connection.query("""
                DELETE FROM conveyor_idempotency_keys k
                USING unnest(\(releases.map(\.key))::text[], \(releases.map(\.owner))::text[]) AS t(key, owner)
                WHERE k.key = t.key AND k.owner = t.owner AND NOT k.completed
                """, logger: logger)
        }
        if !claims.isEmpty {
            claims.sort { $0.key < $1.key }
            var claimed = Set<String>()
            for try await key in try await connection.query("""
                INSERT INTO conveyor_idempotency_keys AS k (key, completed, owner, payload_hash, expires_at)
                SELECT t.key, false, t.owner, t.hash, to_timestamp(t.expires)
                FROM unnest(\(claims.map(\.key))::text[], \(claims.map(\.owner))::text[],
                            \(claims.map(\.hash))::text[], \(claims.map(\.expires))::float8[])
                     AS t(key, owner, hash, expires)
                ON CONFLICT (key) DO UPDATE SET completed = false, owner = excluded.owner,
                    payload_hash = excluded.payload_hash, expires_at = excluded.expires_at
                WHERE k.expires_at <= to_timestamp(\(latest.timeIntervalSince1970))
                   OR (NOT k.completed AND k.owner = excluded.owner)
                RETURNING k.key
                """, logger: logger).decode(String.self) {
                claimed.insert(key)
            }
            let refused = claims.filter { !claimed.contains($0.key) }
            var states: [String: IdempotencyClaim] = [:]
            if !refused.isEmpty {
                for try await (key, completed, hash, expires) in try await connection.query("""
                    SELECT key, completed, payload_hash, extract(epoch FROM expires_at)::float8
                    FROM conveyor_idempotency_keys WHERE key = ANY(\(refused.map(\.key))::text[])
                    """, logger: logger).decode((String, Bool, String, Double).self) {
                    states[key] = completed
                        ? .completed(payloadHash: hash) : .inProgress(until: Date(timeIntervalSince1970: expires))
                }
            }
            for claim in claims {
                // A refused key that vanished meanwhile (purged) is tried again shortly.
                results[claim.index] = .success(
                    claimed.contains(claim.key) ? .claimed : states[claim.key] ?? .inProgress(until: latest)
                )
            }
        }
        return results
    }

    /// Completes `key` and runs `effects` in a savepoint, only while `owner` holds the claim: the record's result.
    private static func completeWithEffects(
        key: String, hash: String, owner: String, expires: Double, effects: [EffectStatement],
        on connection: PostgresConnection, logger: Logger
    ) async throws -> Result<IdempotencyClaim?, any Error> {
        try await connection.query("SAVEPOINT conveyor_effect", logger: logger)
        var held = false
        for try await _ in try await connection.query("""
            UPDATE conveyor_idempotency_keys SET completed = true, payload_hash = \(hash), expires_at = to_timestamp(\(expires))
            WHERE key = \(key) AND owner = \(owner) AND NOT completed RETURNING 1
            """, logger: logger) {
            held = true
        }
        guard held else {
            try await connection.query("ROLLBACK TO SAVEPOINT conveyor_effect", logger: logger)
            return .failure(ConveyorError(.idempotencyClaimLost, "idempotency key \(key) is no longer claimed by this process"))
        }
        do {
            for effect in effects {
                try await connection.query(effect.postgresQuery, logger: logger)
            }
        } catch let error as PSQLError where !connection.isClosed {
            try await connection.query("ROLLBACK TO SAVEPOINT conveyor_effect", logger: logger)
            return .failure(ConveyorError(.idempotencyStore, "transactional effect failed: \(describe(error))"))
        }
        try await connection.query("RELEASE SAVEPOINT conveyor_effect", logger: logger)
        return .success(nil)
    }
}
