import ConveyorTestKit
import Foundation
import Synchronization

/// A process of this package (`conveyor` by default) started by a test, with its standard output collected
/// line by line.
final class ChildProcess: Sendable {
    /// The lines the process wrote to standard output so far.
    let lines = AwaitableState([String]())
    /// The exit status, once the process has exited.
    let exit = AwaitableState<Int32?>(nil)
    /// Whether standard output reached its end (every line the process wrote is in `lines`).
    private let outputEnded = AwaitableState(false)
    private let process: Process
    private let errors: Pipe

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
        let lines = self.lines
        let pending = LineBuffer()
        // A thread of its own reads until end of file: no dispatch source watches the descriptor, so none can
        // outlive it (a closed and reused descriptor under a live source crashes libdispatch).
        let reader = output.fileHandleForReading
        let outputEnded = self.outputEnded
        Thread.detachNewThread {
            while true {
                let data = reader.availableData
                guard !data.isEmpty else {
                    outputEnded.update { $0 = true }
                    return
                }
                let complete = pending.append(data)
                if !complete.isEmpty {
                    lines.update { $0.append(contentsOf: complete) }
                }
            }
        }
        let exit = self.exit
        process.terminationHandler = { process in
            exit.update { $0 = process.terminationStatus }
        }
        try process.run()
        self.process = process
        self.errors = errors
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

    /// Waits for the process to exit and for the end of its standard output (the exit can be seen before the
    /// reader thread took the last lines), and returns its exit status.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let name = "exit of \(self.process.arguments ?? [])"
        let status = try await self.exit.wait(for: name, timeout: timeout) { $0 != nil }!
        _ = try await self.outputEnded.wait(for: "end of output of \(name)", timeout: .seconds(10)) { $0 }
        return status
    }

    /// What the process wrote to standard error (read after it exited).
    var standardError: String {
        String(decoding: self.errors.fileHandleForReading.availableData, as: UTF8.self)
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
