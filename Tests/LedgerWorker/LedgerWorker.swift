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

/// A worker executable is this: the command line of ConveyorCLI with the handlers it runs.
@main
enum LedgerWorker {
    static func main() async {
        await ConveyorCommand.main(handlers: [LedgerFileHandler.self])
    }
}
