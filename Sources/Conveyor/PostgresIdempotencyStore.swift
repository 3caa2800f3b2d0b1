import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Idempotency keys in PostgreSQL (`idempotency.store: postgres://user:password@host:port/database`): one store
/// shared by every process and host of a deployment.
///
/// At start-up the store creates or migrates its table (`conveyor_idempotency_keys`, versions recorded in
/// `conveyor_schema_migrations`, under an advisory lock so that processes starting together migrate once).
/// Claims, completions and releases are group-committed (see ``GroupCommit``): a batch is one transaction on the
/// store's writing connection, with one set-based statement per kind of operation, so a batch of a thousand
/// records costs a handful of round trips. Transactional effects run in the batch's transaction, each in a
/// savepoint of its own. Purges, schema statements and queries use a second connection. A lost connection is
/// opened again by the next operation that needs it.
public final class PostgresIdempotencyStore: IdempotencyStore, GroupCommitting {
    /// The URL without its password, for messages.
    let name: String
    private let writer: PostgresConnectionSlot
    private let reader: PostgresConnectionSlot
    let commits: GroupCommit
    private let logger: Logger

    /// Connects to the server `url` names and creates or migrates the keys table.
    ///
    /// `url` is `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]` (`disable` by
    /// default, for a server on loopback).
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` for a malformed URL; ``ConveyorError/Code/idempotencyStore``
    ///   naming the store when the server cannot be reached or refuses the login.
    public init(url: String, logger: Logger) async throws {
        let configuration = try Self.configuration(url)
        self.name = Self.redacted(url)
        self.logger = logger
        let writer = PostgresConnectionSlot(configuration: configuration, store: self.name, logger: logger)
        self.writer = writer
        self.reader = PostgresConnectionSlot(configuration: configuration, store: self.name, logger: logger)
        self.commits = GroupCommit(maxBatch: 2_048, distinctKeys: true) { operations in
            await PostgresBatch(operations: operations).write(on: writer, logger: logger)
        }
        try await self.migrate()
    }

    /// The schema, by version. A version is never changed once released; a change is a new version.
    private static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE IF NOT EXISTS conveyor_idempotency_keys (
                key text PRIMARY KEY,
                completed boolean NOT NULL,
                owner text NOT NULL,
                payload_hash text NOT NULL,
                expires_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS conveyor_idempotency_keys_expiry ON conveyor_idempotency_keys (expires_at)",
        ]),
    ]

    private func migrate() async throws {
        try await self.reader.withConnection { connection in
            try await connection.withTransaction(logger: self.logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(7210853449)", logger: self.logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS conveyor_schema_migrations (
                        version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """, logger: self.logger)
                var applied = Set<Int>()
                for try await version in try await connection.query(
                    "SELECT version FROM conveyor_schema_migrations", logger: self.logger
                ).decode(Int.self) {
                    applied.insert(version)
                }
                for migration in Self.migrations where !applied.contains(migration.version) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                    }
                    try await connection.query(
                        "INSERT INTO conveyor_schema_migrations (version) VALUES (\(migration.version))", logger: self.logger
                    )
                    self.logger.info("Idempotency store migrated", metadata: ["store": "\(self.name)", "version": "\(migration.version)"])
                }
            }
        }
    }

    public func purgeExpired(now: Date) async throws -> Int {
        try await self.reader.withConnection { connection in
            var purged = 0
            let rows = try await connection.query(
                "DELETE FROM conveyor_idempotency_keys WHERE expires_at <= to_timestamp(\(now.timeIntervalSince1970)) RETURNING 1",
                logger: self.logger
            )
            for try await _ in rows {
                purged += 1
            }
            return purged
        }
    }

    public func prepare(schema: [String]) async throws {
        try await self.reader.withConnection { connection in
            for statement in schema {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
            }
        }
    }

    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [[SQLValue]] {
        try await self.reader.withConnection { connection in
            var rows: [[SQLValue]] = []
            for try await row in try await connection.query(EffectStatement(sql, arguments).postgresQuery, logger: self.logger) {
                rows.append(row.map(SQLValue.init))
            }
            return rows
        }
    }

    /// Closes the store's connections.
    public func close() async {
        await self.writer.close()
        await self.reader.close()
    }

    /// The connection settings a store URL names (`postgres://user[:password]@host[:port]/database[?sslmode=...]`).
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` naming what is wrong with the URL.
    public static func configuration(_ url: String) throws -> PostgresConnection.Configuration {
        let shown = Self.redacted(url)
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql"
        else {
            throw ConveyorError(.configuration, "idempotency.store '\(shown)': not a URL postgres://user:password@host:port/database")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ConveyorError(.configuration, "idempotency.store '\(shown)': no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw ConveyorError(.configuration, "idempotency.store '\(shown)': no user (postgres://user:password@host/database)")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else {
            throw ConveyorError(.configuration, "idempotency.store '\(shown)': no database (postgres://user:password@host/database)")
        }
        let tls: PostgresConnection.Configuration.TLS
        switch components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable" {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(try .init(configuration: .makeClientConfiguration()))
        case "require": tls = .require(try .init(configuration: .makeClientConfiguration()))
        case let mode:
            throw ConveyorError(.configuration, "idempotency.store '\(shown)': sslmode '\(mode)' is not disable, prefer or require")
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: components.password?.removingPercentEncoding, database: database, tls: tls
        )
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// `url` with its password replaced by `***`.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }
}

/// One PostgreSQL connection, opened when first needed and again after it was lost.
actor PostgresConnectionSlot {
    private let configuration: PostgresConnection.Configuration
    private let store: String
    private let logger: Logger
    private var connecting: Task<PostgresConnection, any Error>?
    private static let ids = Atomic<Int>(0)
    /// How long one use of the connection (a batch, a purge, a query) may take.
    static let useDeadline = Duration.seconds(10)
    /// How long opening a connection may take, login included (postgres-nio's connect timeout covers only TCP).
    static let connectDeadline = Duration.seconds(10)

    init(configuration: PostgresConnection.Configuration, store: String, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
    }

    /// Runs `body` on the connection; an error that closed the connection lets the next call open a new one.
    ///
    /// A server that stops answering (a network that drops packets, a session ended at a bad moment: postgres-nio
    /// 1.33 can leave a query waiting forever when the server ends the session under it) would hold every claim
    /// of the process: past ``useDeadline`` the connection is closed and the call fails, whether or not `body`
    /// notices.
    ///
    /// - Throws: ``ConveyorError/Code/idempotencyStore`` naming the store when it cannot be reached, or what
    ///   `body` threw.
    func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await self.connection()
        do {
            return try await withDeadline(
                Self.useDeadline,
                expired: ConveyorError(
                    .idempotencyStore, "idempotency store \(self.store): no answer within \(Self.useDeadline)", isRetryable: true
                ),
                onExpiry: { try? await connection.close() },
                { try await body(connection) }
            )
        } catch {
            if connection.isClosed {
                self.connecting = nil
                if let error = error as? ConveyorError, error.code == .idempotencyStore {
                    throw error
                }
                throw ConveyorError(.idempotencyStore, "idempotency store \(self.store): connection lost: \(describe(error))", isRetryable: true)
            }
            throw error
        }
    }

    private func connection() async throws -> PostgresConnection {
        if let connecting = self.connecting, let connection = try? await connecting.value, !connection.isClosed {
            return connection
        }
        let configuration = self.configuration
        let logger = self.logger
        let store = self.store
        let task = Task {
            try await withDeadline(
                Self.connectDeadline,
                expired: PostgresSlotTimeout(what: "no login within \(Self.connectDeadline)"),
                onExpiry: {},
                {
                    // Cancelled at the deadline, which closes the half-open connection.
                    try await PostgresConnection.connect(
                        configuration: configuration, id: Self.ids.add(1, ordering: .relaxed).newValue, logger: logger
                    )
                }
            )
        }
        self.connecting = task
        do {
            return try await task.value
        } catch {
            if self.connecting == task {
                self.connecting = nil
            }
            throw ConveyorError(.idempotencyStore, "idempotency store \(store): cannot connect: \(describe(error))", isRetryable: true)
        }
    }

    /// Closes the connection, if open.
    func close() async {
        if let connection = try? await self.connecting?.value {
            try? await connection.close()
        }
        self.connecting = nil
    }
}

/// A connection attempt that took too long.
struct PostgresSlotTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { self.what }
}

/// Runs `operation` in a task of its own and returns its result, unless `deadline` passes first: then `onExpiry`
/// runs (to make the operation fail, say by closing its connection), the operation's task is cancelled, and the
/// call throws `expired` without waiting for the operation any longer.
func withDeadline<Value: Sendable>(
    _ deadline: Duration,
    expired: @autoclosure @escaping @Sendable () -> any Error,
    onExpiry: @escaping @Sendable () async -> Void,
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    let race = DeadlineRace<Value>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation)
        let work = Task {
            let result: Result<Value, any Error>
            do {
                result = .success(try await operation())
            } catch {
                result = .failure(error)
            }
            race.finish(with: result)
        }
        race.watch(Task {
            try await Task.sleep(for: deadline)
            guard let continuation = race.expire() else { return }
            await onExpiry()
            work.cancel()
            continuation.resume(throwing: expired())
        })
    }
}

/// Who resumes a ``withDeadline(_:expired:onExpiry:_:)`` call: the operation or the deadline, whichever comes first.
private final class DeadlineRace<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var timer: Task<Void, any Error>?
        var isFinished = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<Value, any Error>) {
        self.state.withLock { $0.continuation = continuation }
    }

    /// Keeps the deadline's timer, to cancel it when the operation finishes first.
    func watch(_ timer: Task<Void, any Error>) {
        let finished = self.state.withLock { state in
            state.timer = timer
            return state.isFinished
        }
        if finished {
            timer.cancel()
        }
    }

    /// The operation finished: resumes the caller unless the deadline did, and stops the timer.
    func finish(with result: Result<Value, any Error>) {
        let (continuation, timer) = self.state.withLock { state in
            state.isFinished = true
            defer { state.continuation = nil }
            return (state.continuation, state.timer)
        }
        timer?.cancel()
        continuation?.resume(with: result)
    }

    /// The deadline passed: the continuation, unless the operation finished first.
    func expire() -> CheckedContinuation<Value, any Error>? {
        self.state.withLock { $0.continuation.take() }
    }
}

/// What a PostgreSQL error says, without the generic text `PSQLError` shows to keep secrets out of logs: the
/// server's message (a refused password, a missing database) or the network's (a refused connection).
func describe(_ error: any Error) -> String {
    guard let error = error as? PSQLError else { return "\(error)" }
    if let message = error.serverInfo?[.message] {
        return message
    }
    if let underlying = error.underlying {
        return "\(underlying)"
    }
    return "\(error.code)"
}

extension EffectStatement {
    /// The statement as PostgresNIO sends it: numbered placeholders and bound values.
    var postgresQuery: PostgresQuery {
        var bindings = PostgresBindings(capacity: self.arguments.count)
        for argument in self.arguments {
            switch argument {
            case .null: bindings.appendNull()
            case .integer(let value): bindings.append(value)
            case .real(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            case .blob(let value): bindings.append(ByteBuffer(bytes: value))
            }
        }
        return PostgresQuery(unsafeSQL: self.numberedSQL, binds: bindings)
    }
}

extension SQLValue {
    /// A value PostgreSQL sent, by its type: integers, reals (numeric as a real), text, bytes, booleans as 0/1.
    init(_ cell: PostgresCell) {
        guard cell.bytes != nil else {
            self = .null
            return
        }
        switch cell.dataType {
        case .int2, .int4, .int8: self = (try? cell.decode(Int64.self)).map(SQLValue.integer) ?? .null
        case .float4, .float8, .numeric: self = (try? cell.decode(Double.self)).map(SQLValue.real) ?? .null
        case .bool: self = (try? cell.decode(Bool.self)).map { .integer($0 ? 1 : 0) } ?? .null
        case .bytea: self = (try? cell.decode(ByteBuffer.self)).map { .blob(Array($0.readableBytesView)) } ?? .null
        default: self = (try? cell.decode(String.self)).map(SQLValue.text) ?? .null
        }
    }
}
