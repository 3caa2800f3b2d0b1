import Foundation
import GRDB

/// Writes a batch of key operations inside the SQLite store's transaction, in the batch's order: a run of claims of
/// one owner, lease and time (a lane's claims made ahead), or of completions without effects of one owner, goes
/// into multi-row statements of up to ``rowsPerStatement`` rows; releases and completions with transactional
/// effects are written one by one.
///
/// One statement per row cost more in Swift and GRDB around `sqlite3_step` (arguments, bindings, statement
/// bookkeeping) than SQLite's own work on the row.
struct SQLiteKeyWriter {
    typealias Results = [Result<IdempotencyClaim?, any Error>]

    /// The most rows one statement writes.
    static let rowsPerStatement = 64

    private let db: Database

    init(_ db: Database) {
        self.db = db
    }

    /// Applies `operations`: one result per operation, in order (`nil` for completions and releases). An error of a
    /// transactional effect is its record's result; any other error fails the whole batch.
    func apply(_ operations: [KeyOperation]) throws -> Results {
        var results = Results()
        results.reserveCapacity(operations.count)
        var start = 0
        while start < operations.count {
            var end = start + 1
            switch operations[start] {
            case .claim(_, _, let owner, let lease, let now):
                while end < operations.count, end - start < Self.rowsPerStatement,
                    case .claim(_, _, owner, lease, now) = operations[end]
                {
                    end += 1
                }
                try self.claim(operations[start..<end], owner: owner, until: now + lease.timeInterval, now: now, into: &results)
            case .complete(_, _, let owner, _, _, let effects) where effects.isEmpty:
                while end < operations.count, end - start < Self.rowsPerStatement,
                    case .complete(_, _, owner, _, _, let effects) = operations[end], effects.isEmpty
                {
                    end += 1
                }
                try self.complete(operations[start..<end], owner: owner)
                results.append(contentsOf: repeatElement(.success(nil), count: end - start))
            case .complete(let key, let payloadHash, let owner, let ttl, let now, let effects):
                results.append(try self.complete(key, payloadHash: payloadHash, owner: owner, until: now + ttl.timeInterval, effects: effects))
            case .release(let key, let owner):
                try self.db.cachedStatement(sql: "DELETE FROM conveyor_idempotency_keys WHERE key = ? AND completed = 0 AND owner = ?")
                    .execute(arguments: [key, owner])
                results.append(.success(nil))
            }
            start = end
        }
        return results
    }

    /// Claims the keys of `claims` for `owner` until `until`: a new key, an expired one, or this owner's own claim
    /// again is taken; otherwise the row says what holds it.
    private func claim(
        _ claims: ArraySlice<KeyOperation>, owner: String, until: Date, now: Date, into results: inout Results
    ) throws {
        var values = SQLiteRowValues(capacity: 2 + 2 * claims.count, textBytes: owner.utf8.count + 64 * claims.count)
        values.append(owner)
        values.append(until.timeIntervalSince1970)
        for case .claim(let key, let payloadHash, _, _, _) in claims {
            values.append(key)
            values.append(payloadHash)
        }
        try values.execute(try self.db.cachedStatement(sql: Self.claimSQL[claims.count]), in: self.db)
        guard self.db.changesCount < claims.count else {
            results.append(contentsOf: repeatElement(.success(.claimed), count: claims.count))
            return
        }
        // Some keys had rows already: each is taken over when it expired or is this owner's claim (inserted just
        // now, or before), else its row says what holds it.
        let takeOver = try self.db.cachedStatement(sql: """
            UPDATE conveyor_idempotency_keys SET completed = 0, owner = ?1, payload_hash = ?2, expires_at = ?3
            WHERE key = ?4 AND (expires_at <= ?5 OR (completed = 0 AND owner = ?1))
            """)
        let state = try self.db.cachedStatement(
            sql: "SELECT completed, payload_hash, expires_at FROM conveyor_idempotency_keys WHERE key = ?"
        )
        for case .claim(let key, let payloadHash, _, _, _) in claims {
            try takeOver.execute(arguments: [owner, payloadHash, until.timeIntervalSince1970, key, now.timeIntervalSince1970])
            if self.db.changesCount == 1 {
                results.append(.success(.claimed))
            } else if let row = try Row.fetchOne(state, arguments: [key]) {
                let completed: Bool = row["completed"]
                results.append(.success(
                    completed
                        ? .completed(payloadHash: row["payload_hash"])
                        : .inProgress(until: Date(timeIntervalSince1970: row["expires_at"]))
                ))
            } else {
                results.append(.success(.inProgress(until: now)))
            }
        }
    }

    /// Marks the keys of `completions` completed.
    private func complete(_ completions: ArraySlice<KeyOperation>, owner: String) throws {
        var values = SQLiteRowValues(capacity: 1 + 3 * completions.count, textBytes: owner.utf8.count + 64 * completions.count)
        values.append(owner)
        for case .complete(let key, let payloadHash, _, let ttl, let now, _) in completions {
            values.append(key)
            values.append(payloadHash)
            values.append((now + ttl.timeInterval).timeIntervalSince1970)
        }
        try values.execute(try self.db.cachedStatement(sql: Self.completeSQL[completions.count]), in: self.db)
    }

    /// Completes `key` with transactional effects, in a savepoint: the statements run and the key completes only
    /// while `owner` still holds the claim; otherwise nothing of it happens.
    private func complete(
        _ key: String, payloadHash: String, owner: String, until: Date, effects: [EffectStatement]
    ) throws -> Result<IdempotencyClaim?, any Error> {
        var result: Result<IdempotencyClaim?, any Error> = .success(nil)
        try self.db.inSavepoint {
            try self.db.cachedStatement(sql: """
                UPDATE conveyor_idempotency_keys SET completed = 1, payload_hash = ?, expires_at = ?
                WHERE key = ? AND owner = ? AND completed = 0
                """).execute(arguments: [payloadHash, until.timeIntervalSince1970, key, owner])
            guard self.db.changesCount == 1 else {
                result = .failure(ConveyorError(.idempotencyClaimLost, "idempotency key \(key) is no longer claimed by this process"))
                return .rollback
            }
            do {
                for effect in effects {
                    try self.db.execute(sql: effect.sql, arguments: StatementArguments(effect.arguments.map(\.databaseValue)))
                }
                return .commit
            } catch {
                result = .failure(error)
                return .rollback
            }
        }
        return result
    }

    /// The claim statement of `n` rows, by `n`: `?1` the owner, `?2` the lease's end, then each row's key and
    /// payload hash. Only new keys are inserted; the others are taken over or not one by one
    /// (an upsert that did both in one statement cost about a tenth of the keyed throughput: alternating runs).
    private static let claimSQL: [String] = (0...rowsPerStatement).map { rows in
        """
        INSERT OR IGNORE INTO conveyor_idempotency_keys (key, completed, owner, payload_hash, expires_at)
        VALUES \((0..<rows).map { "(?\(3 + 2 * $0), 0, ?1, ?\(4 + 2 * $0), ?2)" }.joined(separator: ", "))
        """
    }

    /// The completion statement of `n` rows, by `n`: `?1` the owner, then each row's key, payload hash and expiry.
    /// An upsert: it changes a claimed row in place (INSERT OR REPLACE would delete and insert it).
    private static let completeSQL: [String] = (0...rowsPerStatement).map { rows in
        """
        INSERT INTO conveyor_idempotency_keys (key, completed, owner, payload_hash, expires_at)
        VALUES \((0..<rows).map { "(?\(2 + 3 * $0), 1, ?1, ?\(3 + 3 * $0), ?\(4 + 3 * $0))" }.joined(separator: ", "))
        ON CONFLICT (key) DO UPDATE SET completed = 1, owner = excluded.owner,
            payload_hash = excluded.payload_hash, expires_at = excluded.expires_at
        """
    }
}
