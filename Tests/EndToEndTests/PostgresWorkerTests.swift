import ConveyorTestKit
import Foundation
import Testing

/// A cluster whose workers run `ledger-table` on the PostgreSQL store in `database`, keyed by the Kafka key.
private func postgresCluster(_ database: PostgresTestDatabase, partitions: Int, leaseMilliseconds: Int) async throws -> Cluster {
    try await Cluster(
        partitions: partitions,
        handlers: "[ledger-table]",
        extra: """
              ledger-table:
                idempotency:
                  key: key
                  required: true
                  lease_ms: \(leaseMilliseconds)
            idempotency:
              store: "\(database.url)"
            """
    )
}

/// The effects per key in the ledger table.
private func effects(_ database: PostgresTestDatabase) async throws -> [String: Int] {
    var effects: [String: Int] = [:]
    for row in try await database.query("SELECT key, effects::text FROM ledger_effects") {
        if let key = row[0], let count = row[1].flatMap({ Int($0) }) {
            effects[key] = count
        }
    }
    return effects
}

/// Waits until the ledger table has `count` keys (or `timeout` passed; then records an issue).
private func waitForKeys(_ count: Int, in database: PostgresTestDatabase, timeout: Duration = .seconds(60)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    // The table appears when the first worker starts.
    while (try? await effects(database))?.count ?? 0 < count {
        guard clock.now < deadline else {
            Issue.record("only \((try? await effects(database))?.count ?? 0) of \(count) keys had their effect")
            return
        }
        // The table is written by other processes: read it again shortly.
        try await Task.sleep(for: .milliseconds(100))
    }
}

@Suite("Worker processes on the PostgreSQL store")
struct PostgresWorkerTests {
    @Test("Two workers, one killed with SIGKILL mid-stream: every keyed record has exactly one effect")
    func sigkill() async throws {
        let server = try #require(PostgresTestDatabase.serverURL, "\(PostgresTestDatabase.missing)")
        let database = try await PostgresTestDatabase(serverURL: server)
        let cluster = try await postgresCluster(database, partitions: 4, leaseMilliseconds: 3_000)
        let records = 4_000
        try await cluster.produce(records, partitions: 4, keys: records)
        let (first, _) = try cluster.worker("first", delayMilliseconds: 2)
        let (second, _) = try cluster.worker("second", delayMilliseconds: 2)
        try await waitForKeys(records / 4, in: database)
        // Killed mid-stream: claims in progress, effects committed but offsets not, offsets committed.
        first.signal(SIGKILL)
        _ = try await first.waitForExit()
        try await waitForKeys(records, in: database, timeout: .seconds(90))
        let table = try await effects(database)
        #expect(table.count == records)
        #expect(table.values.allSatisfy { $0 == 1 }, "keys with more than one effect: \(table.filter { $0.value != 1 })")
        let completed = try await database.query("SELECT count(*)::text FROM conveyor_idempotency_keys WHERE completed")
        #expect(completed == [["\(records)"]])
        second.signal()
        #expect(try await second.waitForExit() == 0)
        try await cluster.stop()
        try await database.drop()
    }

    @Test("A claim left by a killed worker is taken over once its lease ended, and the effect happens once")
    func leaseExpiry() async throws {
        let server = try #require(PostgresTestDatabase.serverURL, "\(PostgresTestDatabase.missing)")
        let database = try await PostgresTestDatabase(serverURL: server)
        let lease = 8_000
        let cluster = try await postgresCluster(database, partitions: 1, leaseMilliseconds: lease)
        try await cluster.produce(1, partitions: 1, keys: 1)
        // The first worker claims the key and is still in its handler when it is killed.
        let (first, _) = try cluster.worker("first", delayMilliseconds: 120_000)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var claims: [[String?]] = []
        while claims.isEmpty, clock.now < deadline {
            claims = (try? await database.query(
                "SELECT owner, extract(epoch FROM expires_at)::text FROM conveyor_idempotency_keys WHERE NOT completed"
            )) ?? []
            // The claim is written by another process: look again shortly.
            try await Task.sleep(for: .milliseconds(50))
        }
        let claim = try #require(claims.first, "the first worker never claimed the key")
        let leaseEnd = Date(timeIntervalSince1970: try #require(claim[1].flatMap { Double($0) }))
        first.signal(SIGKILL)
        _ = try await first.waitForExit()

        let (second, _) = try cluster.worker("second", delayMilliseconds: 1)
        try await waitForKeys(1, in: database)
        let finished = Date()
        #expect(try await effects(database) == ["k0": 1])
        #expect(finished >= leaseEnd, "the key was taken over at \(finished), before the lease ended at \(leaseEnd)")
        let owners = try await database.query("SELECT owner, completed::text FROM conveyor_idempotency_keys")
        #expect(owners.count == 1 && owners[0][0] != claim[0] && owners[0][1] == "true", "\(owners)")
        second.signal()
        #expect(try await second.waitForExit() == 0)
        try await cluster.stop()
        try await database.drop()
    }

    @Test("Two worker processes receive each key at the same time (on two partitions): one effect per key")
    func sameKeyTwice() async throws {
        let server = try #require(PostgresTestDatabase.serverURL, "\(PostgresTestDatabase.missing)")
        let database = try await PostgresTestDatabase(serverURL: server)
        let cluster = try await postgresCluster(database, partitions: 2, leaseMilliseconds: 10_000)
        let (first, _) = try cluster.worker("first", delayMilliseconds: 20, logLevel: "info")
        let (second, _) = try cluster.worker("second", delayMilliseconds: 20, logLevel: "info")
        // Both workers in the group before the records arrive: once both logged an assignment, the later one
        // split the two partitions between them.
        for worker in [first, second] {
            _ = try await worker.errorLines.wait(for: "an assignment", timeout: .seconds(30)) { lines in
                lines.contains { $0.contains("Partitions assigned") }
            }
        }
        // An odd number of keys puts a key's two records on different partitions.
        let keys = 201
        // Each key twice, the same record on both partitions, as a producer that retried elsewhere would.
        try await cluster.produce(keys * 2, partitions: 2, keys: keys, sameValuePerKey: true)
        try await waitForKeys(keys, in: database)
        // Records of the second partition may still be waiting for their keys: let them settle.
        let group = "conveyor.ledger-table"
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while try await cluster.committed(partitions: 2, group: group).values.reduce(0, { $0 + ($1 ?? 0) }) < Int64(keys * 2),
            clock.now < deadline
        {
            // The offsets are committed by other processes: look again shortly.
            try await Task.sleep(for: .milliseconds(100))
        }
        let table = try await effects(database)
        #expect(table.count == keys)
        #expect(table.values.allSatisfy { $0 == 1 }, "keys with more than one effect: \(table.filter { $0.value != 1 })")
        first.signal()
        second.signal()
        #expect(try await first.waitForExit() == 0)
        #expect(try await second.waitForExit() == 0)
        try await cluster.stop()
        try await database.drop()
    }
}
