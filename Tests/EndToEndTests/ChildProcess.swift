import ConveyorTestKit
import Foundation
import Synchronization

/// A process of this package (`conveyor` by default) started by a test, with its standard output collected
/// line by line.
final class ChildProcess: Sendable {
    /// The lines the process wrote to standard output so far.
    let lines = AwaitableState([String]())
    /// The lines the process wrote to standard error (its log) so far.
    let errorLines = AwaitableState([String]())
    /// The exit status, once the process has exited.
    let exit = AwaitableState<Int32?>(nil)
    /// How many of standard output and standard error reached their end.
    private let outputsEnded = AwaitableState(0)
    private let process: Process

    /// Starts `executable` (built next to the test bundle) with `arguments` and extra `environment` variables.
    init(_ arguments: [String], executable: String = "conveyor", environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = Self.executable(executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        Self.read(output, into: self.lines, ended: self.outputsEnded)
        Self.read(errors, into: self.errorLines, ended: self.outputsEnded)
        let exit = self.exit
        process.terminationHandler = { process in
            exit.update { $0 = process.terminationStatus }
        }
        try process.run()
        self.process = process
    }

    /// Reads `pipe` line by line into `lines` until end of file, on a thread of its own: no dispatch source
    /// watches the descriptor, so none can outlive it (a closed and reused descriptor under a live source crashes
    /// libdispatch).
    private static func read(_ pipe: Pipe, into lines: AwaitableState<[String]>, ended: AwaitableState<Int>) {
        let reader = pipe.fileHandleForReading
        let pending = LineBuffer()
        Thread.detachNewThread {
            while true {
                let data = reader.availableData
                guard !data.isEmpty else {
                    ended.update { $0 += 1 }
                    return
                }
                let complete = pending.append(data)
                if !complete.isEmpty {
                    lines.update { $0.append(contentsOf: complete) }
                }
            }
        }
    }

    /// An executable of this package, built next to the test bundle.
    static func executable(_ name: String) -> URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent()
            .appendingPathComponent(name)
    }

    /// Sends a signal (SIGTERM by default).
    func signal(_ signal: Int32 = SIGTERM) {
        kill(self.process.processIdentifier, signal)
    }

    /// Waits for the process to exit and for the end of its output (the exit can be seen before the reader threads
    /// took the last lines), and returns its exit status.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let name = "exit of \(self.process.arguments ?? [])"
        let status = try await self.exit.wait(for: name, timeout: timeout) { $0 != nil }!
        _ = try await self.outputsEnded.wait(for: "end of output of \(name)", timeout: .seconds(10)) { $0 == 2 }
        return status
    }

    /// What the process wrote to standard error so far.
    var standardError: String {
        self.errorLines.value.joined(separator: "\n")
    }

    deinit {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
    }
}

/// Splits a byte stream into lines.
private final class LineBuffer: Sendable {
    private let buffer = Mutex<[UInt8]>([])

    /// Adds bytes and returns the lines they completed.
    func append(_ data: Data) -> [String] {
        self.buffer.withLock { buffer in
            buffer.append(contentsOf: data)
            var lines: [String] = []
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                buffer.removeSubrange(...newline)
            }
            return lines
        }
    }
}
