import Conveyor
import ConveyorCLI
import Foundation

/// A handler for multi-process tests: waits `LEDGER_DELAY_MS` (default 1) milliseconds, then appends
/// `topic partition offset value` to the file `LEDGER_FILE`, before it returns (so before the offset can be
/// committed). A record whose value is `LEDGER_TRAP` stops the process with a Swift trap, as a bug would.
struct LedgerFileHandler: Handler {
    static let name = "ledger"
    let topics = ["ledger"]

    private let file: FileHandle?
    private let delay: Duration
    private let trap: String?

    init() {
        let environment = ProcessInfo.processInfo.environment
        let path = environment["LEDGER_FILE"] ?? "/dev/null"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        self.file = FileHandle(forWritingAtPath: path)
        self.delay = .milliseconds(Int(environment["LEDGER_DELAY_MS"] ?? "1") ?? 1)
        self.trap = environment["LEDGER_TRAP"]
    }

    func handle(_ record: Record, context: HandlerContext) async throws {
        try await Task.sleep(for: self.delay)
        let value = record.value.map { String(decoding: $0, as: UTF8.self) } ?? ""
        if value == self.trap {
            fatalError("ledger: trap on \(value)")
        }
        let line = "\(record.topic) \(record.partition) \(record.offset) \(value)\n"
        // One write(2) per line on an O_APPEND file: lines of concurrent handlers do not interleave.
        try self.file?.seekToEnd()
        try self.file?.write(contentsOf: Data(line.utf8))
    }
}

/// A handler for multi-process tests of idempotency keys: waits `LEDGER_DELAY_MS` milliseconds, then adds one to
/// the row of the record's key in table `ledger_effects`, in the transaction that completes the key (configure
/// `handlers.ledger-table.idempotency` with `key: key` and a database store). A key's `effects` is then the number
/// of times its effect happened.
struct LedgerTableHandler: Handler {
    static let name = "ledger-table"
    let topics = ["ledger"]

    static let storeSchema = ["CREATE TABLE IF NOT EXISTS ledger_effects (key TEXT PRIMARY KEY, effects INTEGER NOT NULL)"]

    private let delay: Duration

    init() {
        self.delay = .milliseconds(Int(ProcessInfo.processInfo.environment["LEDGER_DELAY_MS"] ?? "1") ?? 1)
    }

    func handle(_ record: Record, context: HandlerContext) async throws {
        try await Task.sleep(for: self.delay)
        let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
        try context.idempotency.transaction { transaction in
            transaction.execute(
                """
                INSERT INTO ledger_effects (key, effects) VALUES (?, 1)
                ON CONFLICT (key) DO UPDATE SET effects = ledger_effects.effects + 1
                """,
                .text(key)
            )
        }
    }
}

/// A worker executable is this: the command line of ConveyorCLI with the handlers it runs.
@main
enum LedgerWorker {
    static func main() async {
        await ConveyorCommand.main(handlers: [LedgerFileHandler.self, LedgerTableHandler.self])
    }
}
