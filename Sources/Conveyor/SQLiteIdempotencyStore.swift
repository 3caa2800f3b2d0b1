import Foundation
import GRDB
import Synchronization

/// Idempotency keys in an SQLite database file (`idempotency.store: sqlite:///path/to/keys.db`): the embedded store
/// for one host. It survives restarts and is shared by the processes of the host that open the same file (SQLite's
/// write-ahead log lets them read while one writes; writes wait up to 5 s for each other).
///
/// Claims, completions and releases are group-committed: the operations that arrive while a transaction is being
/// written go together into the next one, applied in arrival order (so each sees the ones before it, as if they ran
/// one by one), and each caller resumes when its transaction committed.
public final class SQLiteIdempotencyStore: IdempotencyStore {
    private enum Operation: Sendable {
        case claim(key: String, payloadHash: String, owner: String, lease: Duration, now: Date)
        case complete(key: String, payloadHash: String, owner: String, ttl: Duration, now: Date)
        case release(key: String, owner: String)
    }

    private struct Queue {
        var operations: [(Operation, CheckedContinuation<IdempotencyClaim?, any Error>)] = []
        var isWriting = false
    }

    private let database: DatabasePool
    private let queue = Mutex(Queue())

    /// Opens (creating if needed) the database at `path`, in WAL mode, with the keys table.
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` naming the store and why it cannot be opened.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            // A pool opens the database in WAL mode.
            self.database = try DatabasePool(path: path, configuration: configuration)
            try self.database.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS conveyor_idempotency_keys (
                        key TEXT PRIMARY KEY NOT NULL,
                        completed INTEGER NOT NULL,
                        owner TEXT NOT NULL,
                        payload_hash TEXT NOT NULL,
                        expires_at REAL NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX IF NOT EXISTS conveyor_idempotency_keys_expiry ON conveyor_idempotency_keys(expires_at);
                    """)
            }
        } catch {
            throw ConveyorError(.configuration, "idempotency.store sqlite://\(path): cannot open the database: \(error)")
        }
    }

    /// The database's journal mode (`wal`).
    var journalMode: String {
        get throws { try self.database.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") ?? "" } }
    }

    public func claim(_ key: String, payloadHash: String, owner: String, lease: Duration, now: Date) async throws -> IdempotencyClaim {
        try await self.submit(.claim(key: key, payloadHash: payloadHash, owner: owner, lease: lease, now: now)) ?? .claimed
    }

    public func complete(_ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date) async throws {
        _ = try await self.submit(.complete(key: key, payloadHash: payloadHash, owner: owner, ttl: ttl, now: now))
    }

    public func release(_ key: String, owner: String) async throws {
        _ = try await self.submit(.release(key: key, owner: owner))
    }

    /// Queues an operation for the next transaction, starting a writer if none is running.
    private func submit(_ operation: Operation) async throws -> IdempotencyClaim? {
        try await withCheckedThrowingContinuation { continuation in
            let startWriter = self.queue.withLock { queue in
                queue.operations.append((operation, continuation))
                defer { queue.isWriting = true }
                return !queue.isWriting
            }
            if startWriter {
                Task { await self.write() }
            }
        }
    }

    /// Writes queued operations, a transaction per group, until the queue is empty.
    private func write() async {
        while true {
            let batch: [(Operation, CheckedContinuation<IdempotencyClaim?, any Error>)]? = self.queue.withLock { queue in
                guard !queue.operations.isEmpty else {
                    queue.isWriting = false
                    return nil
                }
                defer { queue.operations.removeAll() }
                return queue.operations
            }
            guard let batch else { return }
            let operations = batch.map(\.0)
            do {
                let results = try await self.database.write { db in try operations.map { try Self.apply($0, in: db) } }
                for (index, result) in results.enumerated() {
                    batch[index].1.resume(returning: result)
                }
            } catch {
                batch.forEach { $0.1.resume(throwing: error) }
            }
        }
    }

    private static let upsert = """
        INSERT OR REPLACE INTO conveyor_idempotency_keys (key, completed, owner, payload_hash, expires_at)
        VALUES (?, ?, ?, ?, ?)
        """

    private static func apply(_ operation: Operation, in db: Database) throws -> IdempotencyClaim? {
        switch operation {
        case .claim(let key, let payloadHash, let owner, let lease, let now):
            let row = try Row.fetchOne(
                try db.cachedStatement(
                    sql: "SELECT completed, owner, payload_hash, expires_at FROM conveyor_idempotency_keys WHERE key = ?"
                ),
                arguments: [key]
            )
            if let row {
                let expires = Date(timeIntervalSince1970: row["expires_at"])
                let completed: Bool = row["completed"]
                let holder: String = row["owner"]
                if completed, expires > now {
                    return .completed(payloadHash: row["payload_hash"])
                }
                if !completed, expires > now, holder != owner {
                    return .inProgress(until: expires)
                }
            }
            try db.cachedStatement(sql: Self.upsert).execute(
                arguments: [key, 0, owner, payloadHash, (now + lease.timeInterval).timeIntervalSince1970]
            )
            return .claimed
        case .complete(let key, let payloadHash, let owner, let ttl, let now):
            try db.cachedStatement(sql: Self.upsert).execute(
                arguments: [key, 1, owner, payloadHash, (now + ttl.timeInterval).timeIntervalSince1970]
            )
            return nil
        case .release(let key, let owner):
            try db.cachedStatement(sql: "DELETE FROM conveyor_idempotency_keys WHERE key = ? AND completed = 0 AND owner = ?")
                .execute(arguments: [key, owner])
            return nil
        }
    }

    public func purgeExpired(now: Date) async throws -> Int {
        try await self.database.write { db in
            try db.execute(
                sql: "DELETE FROM conveyor_idempotency_keys WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970]
            )
            return db.changesCount
        }
    }
}
