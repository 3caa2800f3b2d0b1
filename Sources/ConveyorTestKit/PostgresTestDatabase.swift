import Conveyor
import Foundation
import Logging
import PostgresNIO

/// A database of its own for one test, on the PostgreSQL server `CONVEYOR_TEST_POSTGRES_URL` names
/// (`scripts/postgres` starts one and prints its URL; `scripts/test` sets the variable).
public struct PostgresTestDatabase: Sendable {
    /// The environment variable naming the server for the PostgreSQL tests.
    public static let variable = "CONVEYOR_TEST_POSTGRES_URL"

    /// The server's URL from the environment, or `nil` when the variable is not set.
    public static var serverURL: String? {
        ProcessInfo.processInfo.environment[Self.variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// What a test says when the variable is missing.
    public static let missing =
        "\(Self.variable) is not set: the PostgreSQL tests need a server (scripts/postgres starts one and prints its URL)"

    /// The URL of the new database.
    public let url: String
    private let server: String
    private let name: String

    /// Creates a new, empty database named after a random identifier on the server `serverURL` names.
    public init(serverURL: String) async throws {
        self.server = serverURL
        self.name = "conveyor_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await Self.administer(serverURL, "CREATE DATABASE \(self.name)")
        var components = try require(URLComponents(string: serverURL))
        components.path = "/" + self.name
        self.url = try require(components.string)
    }

    /// Drops the database, closing its remaining sessions.
    public func drop() async throws {
        try await Self.administer(self.server, "DROP DATABASE IF EXISTS \(self.name) WITH (FORCE)")
    }

    /// Cuts the database off, as an outage would for its clients: new connections are refused and open ones are
    /// closed by the server.
    public func cutOff() async throws {
        try await Self.administer(self.server, "ALTER DATABASE \(self.name) ALLOW_CONNECTIONS false")
        try await Self.administer(
            self.server,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(self.name)' AND pid <> pg_backend_pid()"
        )
    }

    /// Ends ``cutOff()``: the database accepts connections again.
    public func restore() async throws {
        try await Self.administer(self.server, "ALTER DATABASE \(self.name) ALLOW_CONNECTIONS true")
    }

    /// Runs `sql` on the database and returns its rows as text (`NULL` as `nil`; cast other types to `text`).
    public func query(_ sql: String) async throws -> [[String?]] {
        try await Self.withConnection(self.url) { connection in
            var rows: [[String?]] = []
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger) {
                rows.append(row.map { cell in cell.bytes == nil ? nil : try? cell.decode(String.self) })
            }
            return rows
        }
    }

    private static func administer(_ url: String, _ sql: String) async throws {
        try await Self.withConnection(url) { connection in
            _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger)
        }
    }

    private static func withConnection<Result: Sendable>(
        _ url: String, _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await PostgresConnection.connect(
            configuration: try PostgresIdempotencyStore.configuration(url), id: 0, logger: Self.logger
        )
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private static let logger = Logger(label: "conveyor.tests.postgres") { _ in SwiftLogNoOpLogHandler() }
}

/// `value`, or an error naming what was `nil`.
private func require<Value>(_ value: Value?, _ what: String = #function) throws -> Value {
    guard let value else { throw PostgresTestDatabaseError(message: "cannot build a database URL (\(what))") }
    return value
}

/// A URL the test database could not be named in.
struct PostgresTestDatabaseError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
