import ArgumentParser
import Conveyor
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `conveyor run`: runs the configured handlers until SIGTERM or SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the configured handlers until SIGTERM or SIGINT.",
        discussion: """
            On SIGTERM or SIGINT: stop fetching, let in-flight records finish (shutdown.timeout_ms), commit, \
            leave the groups and exit 0. Past the timeout, exit 3 listing the abandoned records (they will be \
            redelivered). A second signal exits at once with status 130.
            """
    )

    /// Exit status when the shutdown timeout passed with records still in flight.
    static let abandonedExitCode: Int32 = 3

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.run")
        let configuration = try RuntimeConfiguration(reader: try await self.runtime.makeReader())
        let supervisor = try Supervisor(configuration: configuration, registry: try CompiledHandlers.current(), logger: logger)
        let signals = ShutdownSignals(supervisor)
        let report = try await supervisor.run(signals: [])
        withExtendedLifetime(signals) {}
        guard report.isClean else {
            for record in report.abandoned {
                StandardOutput.write("abandoned \(record)\n")
            }
            logger.error("Shutdown timeout passed", metadata: ["abandoned": "\(report.abandoned.count)"])
            throw ExitCode(Self.abandonedExitCode)
        }
    }
}

/// Turns SIGTERM and SIGINT into a graceful shutdown of a supervisor; the second signal exits at once.
///
/// Installed before anything else runs, so that a signal that arrives while the process starts up is not
/// lost (and does not kill the process with the default action). Keep it alive for as long as the run lasts.
final class ShutdownSignals {
    private let sources: [any DispatchSourceSignal]

    init(_ supervisor: Supervisor) {
        let count = Mutex(0)
        self.sources = [SIGTERM, SIGINT].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                let seen = count.withLock { count in
                    count += 1
                    return count
                }
                guard seen == 1 else { _exit(130) }
                Task { await supervisor.triggerGracefulShutdown() }
            }
            source.resume()
            return source
        }
    }

    deinit {
        self.sources.forEach { $0.cancel() }
    }
}
