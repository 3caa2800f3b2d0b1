import Foundation
import GRDB
import Synchronization

/// Idempotency keys in an SQLite database file (`idempotency.store: sqlite:///path/to/keys.db`): the embedded store
/// for one host. It survives restarts and is shared by the processes of the host that open the same file (SQLite's
/// write-ahead log lets them read while one writes; writes wait up to 5 s for each other).
///
/// Claims, completions and releases are group-committed (see ``GroupCommit``): the operations that arrive while a
/// transaction is being written go together into the next one, and each caller resumes when it committed; in the
/// transaction, runs of claims and of completions are written many rows per statement (see ``SQLiteKeyWriter``).
/// Transactional effects run in that transaction too, each inside a savepoint of its own, so one failing effect
/// fails only its record.
public final class SQLiteIdempotencyStore: IdempotencyStore, GroupCommitting {
    private let database: DatabasePool
    let commits: GroupCommit
    /// When ``purgeExpired(now:)`` last swept the table for expired claims.
    private let lastSweep = Mutex<Date?>(nil)
    /// Rows of the table one transaction of the sweep for expired claims scans.
    private let sweepChunk: Int

    /// Opens (creating if needed) the database at `path`, in WAL mode, with the keys table.
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` naming the store and why it cannot be opened.
    public convenience init(path: String) throws {
        try self.init(path: path, sweepChunk: 100_000)
    }

    /// ``init(path:)`` with the rows one transaction of the sweep for expired claims scans.
    init(path: String, sweepChunk: Int) throws {
        self.sweepChunk = sweepChunk
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Keys are written at random places of the table: a 64 MiB page cache keeps a few hundred thousand of
            // them without reading pages back, and checkpoints every 16,384 pages (a WAL of up to 64 MiB) write
            // each page once for many transactions. Measured: about 15 % more keyed records per second.
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 16384")
            // A statement that writes many rows (see ``SQLiteKeyWriter``) first copies each page it changes to a
            // statement journal, so that it can be undone alone: in memory, not in a temporary file (a write
            // system call per page).
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        let database: DatabasePool
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            // A pool opens the database in WAL mode.
            database = try DatabasePool(path: path, configuration: configuration)
            do {
                try Self.migrator.migrate(database)
            } catch {
                // Processes that open a new file together race to migrate it (GRDB's migrator reads what was applied
                // before it takes the write lock): the loser's migration rolls back whole, the winner's counts.
                guard try database.read(Self.migrator.hasCompletedMigrations) else { throw error }
            }
        } catch {
            throw ConveyorError(.configuration, "idempotency.store sqlite://\(path): cannot open the database: \(error)")
        }
        self.database = database
        self.commits = GroupCommit(maxBatch: 4_096, distinctKeys: false) { operations in
            do {
                return try await database.write { db in try SQLiteKeyWriter(db).apply(operations) }
            } catch {
                let failure = ConveyorError(.idempotencyStore, "idempotency store sqlite://\(path): \(error)", isRetryable: true)
                return operations.map { _ in .failure(failure) }
            }
        }
    }

    /// The keys table's schema, created or migrated at start-up (GRDB records the migrations applied in the file).
    ///
    /// Keys live in a rowid table with a unique index on the key: a claim appends its row at the table's end
    /// and its completion (usually a few batches later) updates it there, so only the key index is written at
    /// random places. In a table clustered by key (the first schema, `WITHOUT ROWID`) the claim and the
    /// completion each wrote a random page of the table. The expiry index holds completed keys only: a claim
    /// does not enter it and its completion does not move an entry (expired claims are swept by a scan, see
    /// ``purgeExpired(now:)``).
    private static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("conveyor-idempotency-keys-by-rowid") { db in
            // A file of an earlier version has its keys in the first schema: they are copied over.
            let earlier = try db.tableExists("conveyor_idempotency_keys")
            if earlier {
                try db.execute(sql: "ALTER TABLE conveyor_idempotency_keys RENAME TO conveyor_idempotency_keys_by_key")
                try db.execute(sql: "DROP INDEX IF EXISTS conveyor_idempotency_keys_expiry")
            }
            try db.execute(sql: """
                CREATE TABLE conveyor_idempotency_keys (
                    key TEXT NOT NULL UNIQUE,
                    completed INTEGER NOT NULL,
                    owner TEXT NOT NULL,
                    payload_hash TEXT NOT NULL,
                    expires_at REAL NOT NULL
                );
                CREATE INDEX conveyor_idempotency_keys_expiry ON conveyor_idempotency_keys(expires_at) WHERE completed = 1;
                """)
            if earlier {
                try db.execute(sql: """
                    INSERT INTO conveyor_idempotency_keys (key, completed, owner, payload_hash, expires_at)
                        SELECT key, completed, owner, payload_hash, expires_at FROM conveyor_idempotency_keys_by_key;
                    DROP TABLE conveyor_idempotency_keys_by_key;
                    """)
            }
        }
        return migrator
    }()

    /// The database's journal mode (`wal`).
    var journalMode: String {
        get throws { try self.database.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") ?? "" } }
    }

    /// Removes completed keys whose time to live ended (through the expiry index), and expired claims (left by
    /// processes that died, or released late): those are not in the index, so the table is scanned for them, in
    /// chunks of 100,000 rows, each in a transaction of its own so that claims and completions go on
    /// between them; at the first call and then at most every ``sweepInterval`` (an expired claim does no harm
    /// meanwhile: the next claim of its key takes it over).
    public func purgeExpired(now: Date) async throws -> Int {
        var purged = try await self.database.write { db in
            try db.execute(
                sql: "DELETE FROM conveyor_idempotency_keys WHERE completed = 1 AND expires_at <= ?",
                arguments: [now.timeIntervalSince1970]
            )
            return db.changesCount
        }
        let sweeps = self.lastSweep.withLock { last in
            guard last.map({ now.timeIntervalSince($0) >= Self.sweepInterval.timeInterval }) ?? true else { return false }
            last = now
            return true
        }
        guard sweeps else { return purged }
        // Rows added meanwhile are new claims, not expired ones: the sweep ends at the last row there is now.
        let last = try await self.database.read { db in
            try Int64.fetchOne(db, sql: "SELECT max(rowid) FROM conveyor_idempotency_keys") ?? 0
        }
        for start in stride(from: Int64(0), to: last, by: self.sweepChunk) {
            purged += try await self.database.write { db in
                try db.execute(
                    sql: """
                        DELETE FROM conveyor_idempotency_keys
                        WHERE rowid > ? AND rowid <= ? AND completed = 0 AND expires_at <= ?
                        """,
                    arguments: [start, start + Int64(self.sweepChunk), now.timeIntervalSince1970]
                )
                return db.changesCount
            }
        }
        return purged
    }

    /// The least time between two sweeps for expired claims.
    static let sweepInterval = Duration.seconds(600)

    public func prepare(schema: [String]) async throws {
        try await self.database.write { db in
            for statement in schema {
                try db.execute(sql: statement)
            }
        }
    }

    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [[SQLValue]] {
        try await self.database.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments.map(\.databaseValue))).map { row in
                row.databaseValues.map(SQLValue.init)
            }
        }
    }
}

extension SQLValue {
    /// The value as GRDB binds it.
    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let value): value.databaseValue
        case .real(let value): value.databaseValue
        case .text(let value): value.databaseValue
        case .blob(let value): Data(value).databaseValue
        }
    }

    /// A value GRDB read.
    fileprivate init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let value): self = .integer(value)
        case .double(let value): self = .real(value)
        case .string(let value): self = .text(value)
        case .blob(let value): self = .blob(Array(value))
        }
    }
}
