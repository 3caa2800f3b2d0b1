@testable import Conveyor
import ConveyorTestKit
import Foundation
import class GRDB.DatabaseQueue
import struct GRDB.Configuration
import Logging
import MetricsTestKit
@testable import RdKafka
import Synchronization
import Testing


/// Effects of the idempotency-test handlers: one entry per time a handler's effect happened.
private let effects = AwaitableState([String]())

/// Writes `<handler>:<value>` to ``effects`` for each record it runs.
private protocol EffectHandler: Handler {}

extension EffectHandler {
    var topics: [String] { ["unused"] }

    func handle(_ record: Record, context: HandlerContext) async throws {
        let value = record.value.map { String(decoding: $0, as: UTF8.self) } ?? ""
        effects.update { $0.append("\(Self.name):\(value)") }
    }
}

private struct EffectsA: EffectHandler { static let name = "effects-a" }
private struct EffectsB: EffectHandler { static let name = "effects-b" }
private struct EffectsC: EffectHandler { static let name = "effects-c" }
private struct EffectsD: EffectHandler { static let name = "effects-d" }

/// Keys running right now in ``SlowEffects``, and keys seen running twice at once.
private let running = AwaitableState((now: Set<String>(), overlapped: Set<String>()))

/// Takes 100 ms per record, noting any key that runs twice at the same time.
private protocol SlowEffectHandler: Handler {}

private struct SlowEffects: SlowEffectHandler { static let name = "effects-slow" }
private struct SlowEffectsOneOwner: SlowEffectHandler { static let name = "effects-slow-one-owner" }

extension SlowEffectHandler {
    var topics: [String] { ["unused"] }

    func handle(_ record: Record, context: HandlerContext) async throws {
        let key = record.header("idempotency-key") ?? ""
        running.update { state in
            if !state.now.insert(key).inserted { state.overlapped.insert(key) }
        }
        try await Task.sleep(for: .milliseconds(100))
        effects.update { $0.append("\(Self.name):\(key)") }
        running.update { _ = $0.now.remove(key) }
    }
}

/// Takes 20 ms per record, then adds one to its key's row of table `outage_effects` in the transaction that
/// completes the key.
private struct TransactionalEffects: Handler {
    static let name = "effects-transactional"
    var topics: [String] { ["unused"] }
    static let storeSchema = ["CREATE TABLE IF NOT EXISTS outage_effects (key TEXT PRIMARY KEY, effects INTEGER NOT NULL)"]

    func handle(_ record: Record, context: HandlerContext) async throws {
        try await Task.sleep(for: .milliseconds(20))
        try context.idempotency.transaction { transaction in
            transaction.execute(
                "INSERT INTO outage_effects (key, effects) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET effects = outage_effects.effects + 1",
                .text(record.header("idempotency-key") ?? "")
            )
        }
    }
}

/// The connection ``CompletionOutageEffects`` takes the store database's write lock with on its first call.
private let completionLock = Mutex<DatabaseQueue?>(nil)
/// The keys ``CompletionOutageEffects`` was called for, once per call.
private let completionCalls = AwaitableState([String]())

/// Adds one to its key's row of table `completion_effects` in the transaction that completes the key; on its first
/// call it first locks the database from another connection, so that the completion of the record it just
/// handled cannot be written.
private struct CompletionOutageEffects: Handler {
    static let name = "effects-completion-outage"
    var topics: [String] { ["unused"] }
    static let storeSchema = ["CREATE TABLE IF NOT EXISTS completion_effects (key TEXT PRIMARY KEY, effects INTEGER NOT NULL)"]

    func handle(_ record: Record, context: HandlerContext) async throws {
        let key = record.header("idempotency-key") ?? ""
        completionCalls.update { $0.append(key) }
        if let lock = completionLock.withLock({ $0.take() }) {
            try lock.inDatabase { try $0.execute(sql: "BEGIN EXCLUSIVE TRANSACTION") }
        }
        try context.idempotency.transaction { transaction in
            transaction.execute(
                "INSERT INTO completion_effects (key, effects) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET effects = completion_effects.effects + 1",
                .text(key)
            )
        }
    }
}

private let registry = try! HandlerRegistry([
    EffectsA.self, EffectsB.self, EffectsC.self, EffectsD.self, SlowEffects.self, SlowEffectsOneOwner.self,
    TransactionalEffects.self, CompletionOutageEffects.self,
])

private func configuration(_ kafka: EmbeddedKafka, topic: String, handler: String, idempotency: IdempotencySettings) -> RuntimeConfiguration {
    var configuration = runtimeConfiguration(kafka, topic: topic, handlers: [handler])
    configuration.retryPolicy = RetryPolicy(maxAttempts: 3, backoff: .none)
    configuration.handlers[0].idempotency = idempotency
    return configuration
}

private func keyed(_ topic: String, key: String?, value: String) -> KafkaProducerMessage {
    KafkaProducerMessage(
        topic: topic, partition: 0, key: Array("customer-1".utf8), value: Array(value.utf8),
        headers: key.map { [KafkaHeader(name: "idempotency-key", string: $0)] } ?? []
    )
}

/// A path for a new SQLite keys database, in a directory of its own.
private func newKeysPath() -> String {
    NSTemporaryDirectory() + "conveyor-keys-\(UUID().uuidString)/keys.db"
}

/// A new SQLite store, and a second connection to its file that may take the database's write lock (as another
/// process would) to make the store's writes fail.
private func storeWithLockingConnection() throws -> (SQLiteIdempotencyStore, DatabaseQueue) {
    let path = newKeysPath()
    let store = try SQLiteIdempotencyStore(path: path)
    var unsafe = GRDB.Configuration()
    unsafe.allowsUnsafeTransactions = true
    return (store, try DatabaseQueue(path: path, configuration: unsafe))
}

/// An embedded broker with `topic` (one partition) and its dead-letter topic; `topic` holds `count` records
/// `v<n>` with idempotency keys `order-<n>`.
private func brokerWithOrders(_ topic: String, count: Int) async throws -> EmbeddedKafka {
    let kafka = try EmbeddedKafka()
    try kafka.createTopic(topic, partitions: 1)
    try kafka.createTopic(topic + ".dlq", partitions: 1)
    try await produce((0..<count).map { keyed(topic, key: "order-\($0)", value: "v\($0)") }, to: kafka)
    return kafka
}

/// The semantics every store must have.
private func checkSemantics(of store: any IdempotencyStore) async throws {
    let now = Date()
    #expect(try await store.claim("h/a", payloadHash: "1", owner: "p", lease: .seconds(10), now: now) == .claimed)
    let held = try await store.claim("h/a", payloadHash: "1", owner: "q", lease: .seconds(10), now: now + 1)
    #expect(held == .inProgress(until: now + 10) || (held != .claimed && held != .completed(payloadHash: "1")), "never run concurrently: \(held)")
    #expect(try await store.claim("h/a", payloadHash: "1", owner: "q", lease: .seconds(10), now: now + 11) == .claimed, "expired lease taken over")
    try await store.complete("h/a", payloadHash: "1", owner: "q", ttl: .seconds(100), now: now + 12)
    #expect(try await store.claim("h/a", payloadHash: "1", owner: "p", lease: .seconds(10), now: now + 13) == .completed(payloadHash: "1"))
    #expect(try await store.claim("h/b", payloadHash: "2", owner: "p", lease: .seconds(10), now: now) == .claimed)
    try await store.release("h/b", owner: "q")
    #expect(try await store.claim("h/b", payloadHash: "2", owner: "q", lease: .seconds(10), now: now + 1) != .claimed, "only the owner releases")
    try await store.release("h/b", owner: "p")
    #expect(try await store.claim("h/b", payloadHash: "2", owner: "q", lease: .seconds(10), now: now) == .claimed, "released")
    // The owner's claim again renews its lease: nobody takes the key over at the first lease's end.
    #expect(try await store.claim("h/d", payloadHash: "4", owner: "p", lease: .seconds(10), now: now) == .claimed)
    #expect(try await store.claim("h/d", payloadHash: "4", owner: "p", lease: .seconds(10), now: now + 8) == .claimed)
    let renewed = try await store.claim("h/d", payloadHash: "4", owner: "q", lease: .seconds(10), now: now + 12)
    #expect(isHeld(renewed, until: now + 18), "never run concurrently: the renewed lease holds until now + 18: \(renewed)")
    try await store.release("h/d", owner: "p")
    try await store.complete("h/c", payloadHash: "3", owner: "p", ttl: .seconds(1), now: now)
    #expect(try await store.purgeExpired(now: now + 50) == 2, "h/b's lease and h/c's time to live ended; h/a lives")
    #expect(try await store.claim("h/a", payloadHash: "1", owner: "p", lease: .seconds(10), now: now + 50) == .completed(payloadHash: "1"), "h/a kept")
}

/// Whether `claim` says another owner holds the key until `until` (to the millisecond: stores keep times less
/// precisely than `Date`).
private func isHeld(_ claim: IdempotencyClaim, until: Date) -> Bool {
    guard case .inProgress(let held) = claim else { return false }
    return abs(held.timeIntervalSince(until)) < 0.001
}

/// The semantics of batches (a lane's claims made ahead, its completions written together), as every store must
/// answer them: each request as it would be answered alone, in order, also in runs longer than one statement.
private func checkBatches(of store: any IdempotencyStore) async throws {
    let now = Date()
    try await store.complete("b/done", payloadHash: "d", owner: "q", ttl: .seconds(100), now: now)
    #expect(try await store.claim("b/held", payloadHash: "h", owner: "q", lease: .seconds(100), now: now) == .claimed)
    #expect(try await store.claim("b/expired", payloadHash: "e", owner: "q", lease: .seconds(1), now: now - 10) == .claimed)
    #expect(try await store.claim("b/mine", payloadHash: "m", owner: "p", lease: .seconds(100), now: now) == .claimed)
    // 150 new keys (more than one statement's rows) with the four known ones among them.
    var keys = (0..<150).map { "b/new\($0)" }
    keys.insert(contentsOf: ["b/done", "b/held"], at: 70)
    keys.insert(contentsOf: ["b/expired", "b/mine"], at: 130)
    let claims = try await store.claim(keys.map {
        ClaimRequest(key: $0, payloadHash: "x", owner: "p", lease: .seconds(100), now: now)
    }).map { try $0.get() }
    for (key, claim) in zip(keys, claims) {
        switch key {
        case "b/done": #expect(claim == .completed(payloadHash: "d"))
        case "b/held": #expect(isHeld(claim, until: now + 100), "\(claim)")
        default: #expect(claim == .claimed, "\(key): a new key, an expired claim, or the owner's own claim again")
        }
    }
    // Completions of all but the two not claimed, in one batch (over several statements).
    let completed = keys.filter { $0 != "b/done" && $0 != "b/held" }
    let results = await store.complete(completed.map {
        CompletionRequest(key: $0, payloadHash: "x", owner: "p", ttl: .seconds(100), now: now)
    })
    #expect(results.allSatisfy { (try? $0.get()) != nil })
    let again = try await store.claim(keys.map {
        ClaimRequest(key: $0, payloadHash: "x", owner: "r", lease: .seconds(100), now: now + 1)
    }).map { try $0.get() }
    for (key, claim) in zip(keys, again) {
        switch key {
        case "b/done": #expect(claim == .completed(payloadHash: "d"))
        case "b/held": #expect(isHeld(claim, until: now + 100), "\(claim)")
        default: #expect(claim == .completed(payloadHash: "x"), "\(key)")
        }
    }
}

@Suite("Idempotency stores")
struct IdempotencyStoreTests {
    @Test("Payload hashes keep the form of the hashes completed keys already hold (a new form would be a conflict)")
    func payloadHashForm() {
        let values: [[UInt8]?] = [nil, [], Array(#"{"id":"o-1","total":42}"#.utf8), Array("order-9900".utf8)]
        var bytes: [UInt8] = []
        var slots: [KafkaBatchStorage.RecordSlot] = []
        for value in values {
            let start = bytes.count
            bytes += value ?? []
            slots.append(.init(key: nil, value: value.map { _ in start..<bytes.count }, headers: 0..<0, topic: 0, timestamp: nil))
        }
        let storage = KafkaBatchStorage(bytes: bytes, headers: [], topics: ["t"], slots: slots)
        let hashes = slots.indices.map {
            IdempotentCall.payloadHash(of: KafkaRecord(partition: 0, offset: Int64($0), storage: storage, index: $0, topicIndex: 0))
        }
        // Two 64-bit FNV-1a hashes, each in hex without leading zeros (the last one's second half has 13 digits).
        #expect(hashes == [
            "null",
            "cbf29ce4842223256c62272e07bb0142",
            "8900c495a3af32759b6eebec2770c2",
            "8064b050d4311684bd7f5817a7f3f",
        ])
    }

    @Test("Memory store: claim, held, lease takeover, complete, duplicate, release, purge, batches; bounded")
    func memory() async throws {
        try await checkSemantics(of: MemoryIdempotencyStore())
        try await checkBatches(of: MemoryIdempotencyStore())
        let small = MemoryIdempotencyStore(capacity: 3)
        let now = Date()
        for index in 0..<5 {
            try await small.complete("h/x\(index)", payloadHash: "x", owner: "p", ttl: .seconds(100), now: now)
        }
        #expect(try await small.claim("h/x0", payloadHash: "x", owner: "p", lease: .seconds(10), now: now) == .claimed, "the oldest keys were evicted")
        #expect(try await small.claim("h/x4", payloadHash: "x", owner: "p", lease: .seconds(10), now: now) == .completed(payloadHash: "x"))
    }

    @Test("SQLite store: the same semantics and batches, in WAL mode, surviving a reopen")
    func sqlite() async throws {
        let path = newKeysPath()
        let store = try SQLiteIdempotencyStore(path: path)
        #expect(try store.journalMode == "wal")
        try await checkSemantics(of: store)
        try await checkBatches(of: store)
        try await store.complete("h/kept", payloadHash: "k", owner: "p", ttl: .seconds(3_600), now: Date())
        let reopened = try SQLiteIdempotencyStore(path: path)
        #expect(try await reopened.claim("h/kept", payloadHash: "k", owner: "q", lease: .seconds(10), now: Date()) == .completed(payloadHash: "k"))
    }

    @Test("SQLite store: a file of the first schema (keys clustered by key) is migrated once, keeping its keys")
    func sqliteMigration() async throws {
        let directory = NSTemporaryDirectory() + "conveyor-keys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/keys.db"
        let now = Date()
        // The file as Conveyor wrote it before the migration: its keys table, a handler's table beside it.
        let first = try DatabaseQueue(path: path)
        try await first.write { db in
            try db.execute(sql: """
                CREATE TABLE conveyor_idempotency_keys (
                    key TEXT PRIMARY KEY NOT NULL, completed INTEGER NOT NULL, owner TEXT NOT NULL,
                    payload_hash TEXT NOT NULL, expires_at REAL NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX conveyor_idempotency_keys_expiry ON conveyor_idempotency_keys(expires_at);
                CREATE TABLE read_model (id INTEGER PRIMARY KEY);
                INSERT INTO read_model VALUES (7);
                """)
            try db.execute(
                sql: "INSERT INTO conveyor_idempotency_keys VALUES ('h/done', 1, 'p', 'd', ?), ('h/held', 0, 'p', 'h', ?)",
                arguments: [(now + 3_600).timeIntervalSince1970, (now + 60).timeIntervalSince1970]
            )
        }
        try await first.close()
        let store = try SQLiteIdempotencyStore(path: path)
        #expect(try await store.claim("h/done", payloadHash: "d", owner: "q", lease: .seconds(10), now: now) == .completed(payloadHash: "d"))
        #expect(try await store.claim("h/held", payloadHash: "h", owner: "q", lease: .seconds(10), now: now) == .inProgress(until: Date(timeIntervalSince1970: (now + 60).timeIntervalSince1970)))
        #expect(try await store.query("SELECT id FROM read_model", []) == [[.integer(7)]], "a handler's table is left alone")
        let tables = try await store.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'conveyor%' ORDER BY name", [])
        #expect(tables == [[.text("conveyor_idempotency_keys")]], "the first table is gone")
        let schema = try await store.query("SELECT sql FROM sqlite_master WHERE name = 'conveyor_idempotency_keys'", [])
        #expect(schema.first.map { "\($0)".contains("WITHOUT ROWID") } == false, "keys are in a rowid table now")
        // Opening it again migrates nothing more.
        let reopened = try SQLiteIdempotencyStore(path: path)
        #expect(try await reopened.claim("h/new", payloadHash: "n", owner: "q", lease: .seconds(10), now: now) == .claimed)
        #expect(try await reopened.query("SELECT count(*) FROM conveyor_idempotency_keys", []) == [[.integer(3)]])
    }

    @Test("SQLite store: stores opening one new file at once all start, and the file is migrated once")
    func sqliteConcurrentOpen() async throws {
        // Ten new files, each opened by six stores at once, as processes starting together do (each with its own
        // connections, each running the migrator): the race is narrow, so it is run often.
        for _ in 0..<10 {
            let path = newKeysPath()
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true
            )
            let stores = try await withThrowingTaskGroup(of: SQLiteIdempotencyStore.self) { group in
                for _ in 0..<6 {
                    group.addTask { try SQLiteIdempotencyStore(path: path) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await stores[0].query("SELECT identifier FROM grdb_migrations", []) == [[.text("conveyor-idempotency-keys-by-rowid")]])
            #expect(try await stores[1].claim("c/1", payloadHash: "1", owner: "p", lease: .seconds(10), now: Date()) == .claimed)
            #expect(try await stores[5].claim("c/1", payloadHash: "1", owner: "q", lease: .seconds(10), now: Date()) != .claimed, "one table for all")
        }
    }

    @Test("SQLite store: expired claims are swept in chunks of rows, at the first purge and then every 10 minutes")
    func sqliteSweep() async throws {
        let path = newKeysPath()
        let store = try SQLiteIdempotencyStore(path: path, sweepChunk: 7)
        let now = Date()
        // 40 keys in table order: every fourth completed (half of those expired), the others claimed (every
        // third of those with an expired lease).
        var expired: Set<String> = []
        for index in 0..<40 {
            let key = "s/\(index)"
            if index % 4 == 0 {
                let ttl: Duration = index % 8 == 0 ? .seconds(5) : .seconds(5_000)
                try await store.complete(key, payloadHash: "c", owner: "p", ttl: ttl, now: now)
                if index % 8 == 0 { expired.insert(key) }
            } else {
                let lease: Duration = index % 3 == 0 ? .seconds(5) : .seconds(5_000)
                #expect(try await store.claim(key, payloadHash: "c", owner: "p", lease: lease, now: now) == .claimed)
                if index % 3 == 0 { expired.insert(key) }
            }
        }
        #expect(try await store.purgeExpired(now: now + 10) == expired.count, "every expired key, over 6 chunks")
        let left = try await store.query("SELECT key FROM conveyor_idempotency_keys", []).compactMap { row -> String? in
            if case .text(let key) = row.first { key } else { nil }
        }
        #expect(Set(left) == Set((0..<40).map { "s/\($0)" }).subtracting(expired), "only those")
        // A claim that expires now waits for the next sweep, 10 minutes after the last one; completed keys do not.
        #expect(try await store.claim("s/late", payloadHash: "l", owner: "p", lease: .seconds(1), now: now + 10) == .claimed)
        try await store.complete("s/done", payloadHash: "d", owner: "p", ttl: .seconds(1), now: now + 10)
        #expect(try await store.purgeExpired(now: now + 20) == 1, "the completed key only")
        #expect(try await store.purgeExpired(now: now + 600) == 0, "not swept again before 10 minutes")
        #expect(try await store.purgeExpired(now: now + 620) == 1, "the claim, at the next sweep")
        #expect(try await store.query("SELECT count(*) FROM conveyor_idempotency_keys WHERE key = 's/late'", []) == [[.integer(0)]])
    }

    @Test("SQLite store: transactional effects commit with the completion, only under a live claim")
    func sqliteTransactions() async throws {
        let path = newKeysPath()
        try await checkTransactions(of: try SQLiteIdempotencyStore(path: path))
    }

    @Test("PostgreSQL store: the same semantics, batches and transactions; the table is migrated once by concurrent starts")
    func postgres() async throws {
        let server = try #require(PostgresTestDatabase.serverURL, "\(PostgresTestDatabase.missing)")
        let database = try await PostgresTestDatabase(serverURL: server)
        // Three processes' stores start at once: each migrates under the lock, the table is created once.
        let stores = try await withThrowingTaskGroup(of: PostgresIdempotencyStore.self) { group in
            for _ in 0..<3 {
                group.addTask { try await PostgresIdempotencyStore(url: database.url, logger: quietLogger) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(try await database.query("SELECT version::text FROM conveyor_schema_migrations") == [["1"]])
        try await checkSemantics(of: stores[0])
        try await checkBatches(of: stores[2])
        try await checkTransactions(of: stores[1])
        // Claims of one key by two stores at once: exactly one wins.
        let claims = try await withThrowingTaskGroup(of: IdempotencyClaim.self) { group in
            for (index, store) in stores.enumerated() {
                group.addTask {
                    try await store.claim("h/race", payloadHash: "r", owner: "o\(index)", lease: .seconds(10), now: Date())
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(claims.filter { $0 == .claimed }.count == 1, "\(claims)")
        for store in stores {
            await store.close()
        }
        try await database.drop()
    }

    @Test("Store URLs: each store opens; malformed, unknown, unreachable and refused ones name the store and why")
    func urls() async throws {
        var configuration = RuntimeConfiguration(bootstrapServers: "unused")
        #expect(try await configuration.makeIdempotencyStore(logger: quietLogger) is MemoryIdempotencyStore)
        configuration.idempotencyStore = "sqlite://" + NSTemporaryDirectory() + "conveyor-keys-\(UUID().uuidString).db"
        #expect(try await configuration.makeIdempotencyStore(logger: quietLogger) is SQLiteIdempotencyStore)
        var cases = [
            ("keys.db", "expected a URL"), ("sqlite://", "no database path"), ("redis://x", "unknown store"),
            ("sqlite:///proc/no/such/dir/keys.db", "cannot open"), ("postgres://127.0.0.1/db", "no user"),
            ("postgres://u@127.0.0.1", "no database"), ("postgres://u@127.0.0.1/db?sslmode=maybe", "sslmode"),
            ("postgres://u:secret@127.0.0.1:1/db", "cannot connect"),
        ]
        if let server = PostgresTestDatabase.serverURL, var wrong = URLComponents(string: server) {
            wrong.password = "wrong-password"
            cases.append((wrong.string!, "password authentication failed"))
        }
        for (url, named) in cases {
            configuration.idempotencyStore = url
            let error = await #expect(throws: ConveyorError.self) { try await configuration.makeIdempotencyStore(logger: quietLogger) }
            #expect(error?.message.contains(named) == true, "\(url): \(error?.message ?? "")")
            #expect(error?.message.contains("idempotency") == true)
            #expect(error?.message.contains("secret") == false, "passwords are not shown")
        }
    }
}

/// Transactional effects: the statements commit with the key's completion, or none of it does.
private func checkTransactions(of store: any IdempotencyStore) async throws {
    try await store.prepare(schema: ["CREATE TABLE IF NOT EXISTS effects (name TEXT PRIMARY KEY, times INTEGER NOT NULL)"])
    let bump = EffectStatement(
        "INSERT INTO effects (name, times) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET times = effects.times + 1",
        [.text("x")]
    )
    let now = Date()
    #expect(try await store.claim("t/1", payloadHash: "1", owner: "p", lease: .seconds(10), now: now) == .claimed)
    try await store.complete("t/1", payloadHash: "1", owner: "p", ttl: .seconds(100), now: now, effects: [bump])
    #expect(try await store.claim("t/1", payloadHash: "1", owner: "q", lease: .seconds(10), now: now) == .completed(payloadHash: "1"))
    #expect(try await store.query("SELECT times FROM effects WHERE name = ?", [.text("x")]) == [[.integer(1)]])

    // The lease ended and another owner took the key: the first owner's effect is not written.
    #expect(try await store.claim("t/2", payloadHash: "2", owner: "p", lease: .seconds(1), now: now) == .claimed)
    #expect(try await store.claim("t/2", payloadHash: "2", owner: "q", lease: .seconds(10), now: now + 2) == .claimed)
    let lost = await #expect(throws: ConveyorError.self) {
        try await store.complete("t/2", payloadHash: "2", owner: "p", ttl: .seconds(100), now: now + 3, effects: [bump])
    }
    #expect(lost?.code == .idempotencyClaimLost)
    #expect(try await store.query("SELECT times FROM effects WHERE name = ?", [.text("x")]) == [[.integer(1)]])

    // A failing statement fails its record only: nothing of it is written, the key stays claimed.
    #expect(try await store.claim("t/3", payloadHash: "3", owner: "p", lease: .seconds(10), now: now) == .claimed)
    // Both in one batch, as the group commit gathers them: the failing one fails alone.
    let failing = Task {
        try await store.complete(
            "t/3", payloadHash: "3", owner: "p", ttl: .seconds(100), now: now,
            effects: [bump, EffectStatement("INSERT INTO no_such_table VALUES (1)")]
        )
    }
    let passing = Task {
        try await store.complete("t/2", payloadHash: "2", owner: "q", ttl: .seconds(100), now: now + 3, effects: [bump])
    }
    await #expect(throws: (any Error).self) { try await failing.value }
    try await passing.value
    #expect(try await store.query("SELECT times FROM effects WHERE name = ?", [.text("x")]) == [[.integer(2)]])
    let afterFailure = try await store.claim("t/3", payloadHash: "3", owner: "q", lease: .seconds(10), now: now + 1)
    guard case .inProgress(let until) = afterFailure else {
        Issue.record("t/3 should still be claimed by p, got \(afterFailure)")
        return
    }
    #expect(abs(until.timeIntervalSince(now + 10)) < 0.01)
}

@Suite("Idempotency keys in the runtime")
struct IdempotencyRuntimeTests {
    @Test("A duplicate has no effect and is counted; another payload under a completed key is a conflict (DLQ)")
    func duplicatesAndConflicts() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "idem-orders"
        try kafka.createTopic(topic, partitions: 1)
        try kafka.createTopic(topic + ".dlq", partitions: 1)
        try await produce(
            [keyed(topic, key: "order-1", value: "A"), keyed(topic, key: "order-1", value: "A"),
             keyed(topic, key: "order-1", value: "B"), keyed(topic, key: nil, value: "no-key"),
             keyed(topic, key: "order-2", value: "C")],
            to: kafka
        )
        let metrics = TestMetrics()
        let supervisor = try Supervisor(
            configuration: configuration(kafka, topic: topic, handler: EffectsA.name, idempotency: IdempotencySettings()),
            registry: registry, logger: quietLogger, metrics: metrics
        )
        let run = Task { try await supervisor.run(signals: []) }
        let (reader, collector) = try await collect(topic + ".dlq", on: kafka)
        let letters = try await collector.log.wait(for: "the conflict's dead letter", timeout: .seconds(60)) { !$0.records.isEmpty }.records
        _ = try await effects.wait(for: "the last record", timeout: .seconds(30)) { $0.contains("\(EffectsA.name):C") }
        try await reader.close()
        let statistics = try #require(supervisor.statistics.first)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)

        let mine = effects.value.filter { $0.hasPrefix(EffectsA.name) }
        #expect(mine == ["\(EffectsA.name):A", "\(EffectsA.name):no-key", "\(EffectsA.name):C"], "one effect per key")
        #expect(statistics.duplicatesSkipped == 1)
        #expect(try metrics.expectCounter("conveyor_duplicates_skipped_total", [("handler", EffectsA.name), ("topic", topic)]).totalValue == 1)
        #expect(letters.count == 1)
        #expect(letters.first.flatMap { header($0, DeadLetter.Header.reason) } == "idempotency-conflict")
        #expect(letters.first?.value.map { String(decoding: $0, as: UTF8.self) } == "B")
    }

    @Test("SQLite store: records redelivered to a new run (another group) are duplicates, without effect")
    func sqliteAcrossRuns() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "idem-sqlite"
        try kafka.createTopic(topic, partitions: 2)
        try await produce((0..<30).map { keyed(topic, key: "order-\($0)", value: "s\($0)") }, to: kafka)
        let path = NSTemporaryDirectory() + "conveyor-keys-\(UUID().uuidString).db"
        var counts: [Int] = []
        for round in 0..<2 {
            var configuration = configuration(kafka, topic: topic, handler: EffectsD.name, idempotency: IdempotencySettings())
            configuration.idempotencyStore = "sqlite://" + path
            // A new group reads everything again, as a redelivery after a crash would.
            configuration.handlers[0].groupID = "\(topic).round-\(round)"
            let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
            let run = Task { try await supervisor.run(signals: []) }
            await eventually(timeout: .seconds(60)) {
                (supervisor.statistics.first.map { $0.inFlight == 0 ? $0.handled + $0.duplicatesSkipped : 0 } ?? 0) >= 30
            }
            counts.append(supervisor.statistics.first?.duplicatesSkipped ?? -1)
            await supervisor.triggerGracefulShutdown()
            #expect(try await run.value.isClean)
        }
        let mine = effects.value.filter { $0.hasPrefix("\(EffectsD.name):s") }
        #expect(mine.count == 30 && Set(mine).count == 30, "one effect per key over both runs: \(mine.count)")
        #expect(counts == [0, 30], "the second run skipped every record as a duplicate")
    }

    @Test("Two processes get the same keys at the same time: never run concurrently, one effect per key")
    func concurrentOwners() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "idem-concurrent"
        try kafka.createTopic(topic, partitions: 4)
        try await produce(
            (0..<20).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array("same".utf8),
                                                headers: [KafkaHeader(name: "idempotency-key", string: "order-\($0)")]) },
            to: kafka
        )
        // Two supervisors are two owners (as two processes are), sharing one SQLite store; each reads every record
        // in a group of its own, so both receive each key at about the same time.
        let path = NSTemporaryDirectory() + "conveyor-keys-\(UUID().uuidString).db"
        let supervisors = try (0..<2).map { index in
            var configuration = configuration(kafka, topic: topic, handler: SlowEffects.name, idempotency: IdempotencySettings())
            configuration.idempotencyStore = "sqlite://" + path
            configuration.handlers[0].groupID = "\(topic).owner-\(index)"
            return try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        }
        let runs = supervisors.map { supervisor in Task { try await supervisor.run(signals: []) } }
        let settled = await eventually(timeout: .seconds(60)) {
            supervisors.allSatisfy { supervisor in
                supervisor.statistics.first.map { $0.inFlight == 0 && $0.handled + $0.duplicatesSkipped == 20 } ?? false
            }
        }
        #expect(settled, "both owners finished every record")
        let statistics = supervisors.compactMap { $0.statistics.first }
        for supervisor in supervisors {
            await supervisor.triggerGracefulShutdown()
        }
        for run in runs {
            #expect(try await run.value.isClean)
        }
        let mine = effects.value.filter { $0.hasPrefix(SlowEffects.name + ":") }
        #expect(mine.count == 20 && Set(mine).count == 20, "one effect per key over both owners: \(mine.count)")
        #expect(statistics.map(\.duplicatesSkipped).reduce(0, +) == 20, "the other owner skipped each key once")
        #expect(running.value.overlapped.isEmpty, "keys that ran concurrently: \(running.value.overlapped)")
    }

    @Test("One process gets a key on several lanes at once: never run concurrently, one effect per key")
    func oneOwnerManyLanes() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "idem-one-owner"
        try kafka.createTopic(topic, partitions: 1)
        // Three records per idempotency key, each with a Kafka key of its own: they go to different lanes.
        try await produce(
            (0..<30).map { KafkaProducerMessage(topic: topic, key: Array("k\($0)".utf8), value: Array("same".utf8),
                                                headers: [KafkaHeader(name: "idempotency-key", string: "lanes-\($0 % 10)")]) },
            to: kafka
        )
        var configuration = configuration(kafka, topic: topic, handler: SlowEffectsOneOwner.name, idempotency: IdempotencySettings())
        configuration.idempotencyStore = "sqlite://" + NSTemporaryDirectory() + "conveyor-keys-\(UUID().uuidString).db"
        let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        let run = Task { try await supervisor.run(signals: []) }
        let settled = await eventually(timeout: .seconds(60)) {
            supervisor.statistics.first.map { $0.inFlight == 0 && $0.handled + $0.duplicatesSkipped == 30 } ?? false
        }
        #expect(settled, "every record finished")
        let statistics = try #require(supervisor.statistics.first)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        let mine = effects.value.filter { $0.hasPrefix(SlowEffectsOneOwner.name + ":") }
        #expect(mine.count == 10 && Set(mine).count == 10, "one effect per key: \(mine.count)")
        #expect(statistics.duplicatesSkipped == 20)
        #expect(!running.value.overlapped.contains { $0.hasPrefix("lanes-") }, "keys that ran concurrently: \(running.value.overlapped)")
    }

    @Test("A handler that requires keys dead-letters a record without one")
    func requiredKey() async throws {
        let kafka = try EmbeddedKafka()
        let topic = "idem-required"
        try kafka.createTopic(topic, partitions: 1)
        try kafka.createTopic(topic + ".dlq", partitions: 1)
        try await produce([keyed(topic, key: nil, value: "anonymous"), keyed(topic, key: "order-9", value: "D")], to: kafka)
        var settings = IdempotencySettings()
        settings.required = true
        let supervisor = try Supervisor(
            configuration: configuration(kafka, topic: topic, handler: EffectsB.name, idempotency: settings),
            registry: registry, logger: quietLogger
        )
        let run = Task { try await supervisor.run(signals: []) }
        _ = try await effects.wait(for: "the keyed record", timeout: .seconds(60)) { $0.contains("\(EffectsB.name):D") }
        await eventually { supervisor.statistics.first?.deadLettered == 1 }
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        #expect(!effects.value.contains("\(EffectsB.name):anonymous"))
        #expect(supervisor.statistics.first?.deadLettered == 1, "reason missing-idempotency-key")
    }

    @Test("SQLite store locked by another process: fail closed (paused, nothing dead-lettered or committed), then every record once")
    func storeOutage() async throws {
        let topic = "idem-outage"
        let kafka = try await brokerWithOrders(topic, count: 20)
        // Another connection holds the database's write lock: the store's writes wait 5 s, then fail.
        let (store, lock) = try storeWithLockingConnection()
        try lock.inDatabase { try $0.execute(sql: "BEGIN EXCLUSIVE TRANSACTION") }
        let supervisor = try Supervisor(
            configuration: configuration(kafka, topic: topic, handler: EffectsC.name, idempotency: IdempotencySettings()),
            registry: registry, logger: quietLogger, idempotencyStore: store
        )
        let run = Task { try await supervisor.run(signals: []) }
        await eventually { supervisor.statistics.first?.partitionsPausedForWrites.isEmpty == false }
        let during = try #require(supervisor.statistics.first)
        #expect(during.isIdempotencyStoreUnavailable, "the health state says so")
        #expect(during.partitionsPausedForWrites == [TopicPartition(topic, 0)], "the partition pauses")
        try await Task.sleep(for: .seconds(1))
        #expect(!effects.value.contains { $0.hasPrefix(EffectsC.name) }, "the handler never runs without a claim")
        let group = "\(topic).\(EffectsC.name)"
        let partition = TopicPartition(topic, 0)
        let held = try await committedOffset(of: group, partition, on: kafka)
        #expect(held.map { $0 == 0 } ?? true, "nothing committed: \(String(describing: held))")

        try lock.inDatabase { try $0.execute(sql: "ROLLBACK") }
        let done = try await effects.wait(for: "all 20 records", timeout: .seconds(60)) { list in
            list.filter { $0.hasPrefix(EffectsC.name) }.count >= 20
        }.filter { $0.hasPrefix(EffectsC.name) }
        var committed: Int64?
        await eventually {
            committed = try? await committedOffset(of: group, partition, on: kafka)
            return committed == 20
        }
        let statistics = try #require(supervisor.statistics.first)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        #expect(done.count == 20 && Set(done).count == 20, "one effect each")
        #expect(statistics.deadLettered == 0, "nothing went to the dead-letter topic")
        #expect(!statistics.isIdempotencyStoreUnavailable)
        #expect(committed == 20)
    }

    @Test("PostgreSQL outage mid-run: fail closed (paused, nothing dead-lettered or committed past), then one effect each")
    func postgresOutage() async throws {
        let server = try #require(PostgresTestDatabase.serverURL, "\(PostgresTestDatabase.missing)")
        let database = try await PostgresTestDatabase(serverURL: server)
        let topic = "idem-pg-outage"
        let records = 60
        let kafka = try await brokerWithOrders(topic, count: records)
        var configuration = configuration(kafka, topic: topic, handler: TransactionalEffects.name, idempotency: IdempotencySettings())
        configuration.idempotencyStore = database.url
        let supervisor = try Supervisor(configuration: configuration, registry: registry, logger: quietLogger)
        let run = Task { try await supervisor.run(signals: []) }
        let handled = { @Sendable () async -> [String: Int] in
            var effects: [String: Int] = [:]
            for row in (try? await database.query("SELECT key, effects::text FROM outage_effects")) ?? [] {
                effects[row[0] ?? ""] = row[1].flatMap { Int($0) }
            }
            return effects
        }
        #expect(await eventually { await handled().count >= 5 }, "records are handled before the outage")
        try await database.cutOff()
        #expect(await eventually { supervisor.statistics.first?.partitionsPausedForWrites.isEmpty == false }, "the partition pauses")
        let during = try #require(supervisor.statistics.first)
        #expect(during.isIdempotencyStoreUnavailable, "the health state says so")
        let group = "\(topic).\(TransactionalEffects.name)"
        let partition = TopicPartition(topic, 0)
        try await Task.sleep(for: .seconds(1))
        try await database.restore()
        let before = await handled()
        let committed = try await committedOffset(of: group, partition, on: kafka) ?? 0
        #expect(committed <= Int64(before.count), "nothing committed past unhandled records: \(committed) > \(before.count)")
        #expect(before.count < records, "the outage came mid-run")

        #expect(await eventually(timeout: .seconds(60)) { await handled().count == records }, "every record once the store is back")
        #expect(await eventually {
            (try? await committedOffset(of: group, partition, on: kafka)) == Int64(records)
        })
        let statistics = try #require(supervisor.statistics.first)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        let effects = await handled()
        #expect(effects.values.allSatisfy { $0 == 1 }, "one effect each: \(effects.filter { $0.value != 1 })")
        #expect(statistics.deadLettered == 0, "nothing went to the dead-letter topic")
        #expect(!statistics.isIdempotencyStoreUnavailable)
        try await database.drop()
    }

    @Test("The store fails between a handler and its key's completion: nothing committed, the record runs again, one effect, in key order")
    func completionFails() async throws {
        let topic = "idem-completion-outage"
        let records = 20
        let kafka = try await brokerWithOrders(topic, count: records)
        let (store, lock) = try storeWithLockingConnection()
        completionLock.withLock { $0 = lock }
        let supervisor = try Supervisor(
            configuration: configuration(kafka, topic: topic, handler: CompletionOutageEffects.name, idempotency: IdempotencySettings()),
            registry: registry, logger: quietLogger, idempotencyStore: store
        )
        let run = Task { try await supervisor.run(signals: []) }
        let group = "\(topic).\(CompletionOutageEffects.name)"
        let partition = TopicPartition(topic, 0)
        let effects = { @Sendable () async -> [String: Int64] in
            var effects: [String: Int64] = [:]
            for row in (try? await store.query("SELECT key, effects FROM completion_effects", [])) ?? [] {
                if case .text(let key) = row[0], case .integer(let count) = row[1] { effects[key] = count }
            }
            return effects
        }

        // The first record ran and locked the database: its completion (with its effect) cannot be written.
        try await completionCalls.wait(for: "the first call") { $0.contains("order-0") }
        #expect(await eventually(timeout: .seconds(30)) { supervisor.statistics.first?.isIdempotencyStoreUnavailable == true },
                "the failed completion is reported as the store being unavailable")
        #expect(await effects().isEmpty, "no effect without its completion")
        let held = try await committedOffset(of: group, partition, on: kafka)
        #expect(held.map { $0 == 0 } ?? true, "nothing committed past the record whose completion failed: \(String(describing: held))")

        try lock.inDatabase { try $0.execute(sql: "ROLLBACK") }
        #expect(await eventually(timeout: .seconds(60)) {
            (try? await committedOffset(of: group, partition, on: kafka)) == Int64(records)
        }, "every record once the store is back")
        let statistics = try #require(supervisor.statistics.first)
        await supervisor.triggerGracefulShutdown()
        #expect(try await run.value.isClean)
        let done = await effects()
        #expect(done.count == records && done.values.allSatisfy { $0 == 1 }, "one effect each: \(done)")
        let calls = completionCalls.value
        #expect(calls.filter { $0 == "order-0" }.count >= 2, "the record whose completion failed ran again")
        // All records share one Kafka key: each runs only after the last run of the one before it, whose
        // completion was pending or failed (per-key order across idempotency keys).
        for index in 1..<records {
            let before = calls.lastIndex(of: "order-\(index - 1)")
            let first = calls.firstIndex(of: "order-\(index)")
            #expect(before != nil && first != nil && before! < first!, "order-\(index) runs only after order-\(index - 1)'s last run: \(calls)")
        }
        #expect(statistics.deadLettered == 0, "nothing went to the dead-letter topic")
        #expect(!statistics.isIdempotencyStoreUnavailable)
    }
}
