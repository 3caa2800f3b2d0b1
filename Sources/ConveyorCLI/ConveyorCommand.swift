import ArgumentParser
import Conveyor

/// The `conveyor` command line: the root command and its subcommands.
///
/// A worker executable is one line: `await ConveyorCommand.main(handlers: [MyHandler.self, ...])`.
public struct ConveyorCommand: AsyncParsableCommand {
    /// The command's description and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "conveyor",
        abstract: "A worker runtime for Kafka.",
        subcommands: [
            RunCommand.self,
            CheckConfigCommand.self,
            DevCommand.self,
            BrokerCommand.self,
            ProduceCommand.self,
            ConsumeCommand.self,
            DeadLetterCommand.self,
            BenchCommand.self,
            BenchConsumerCommand.self,
        ]
    )

    /// Creates the command (used by the argument parser).
    public init() {}

    /// Runs the command line with `handlers` as the handlers `conveyor run` can run.
    public static func main(handlers: [any Handler.Type]) async {
        do {
            let registry = try HandlerRegistry(handlers)
            await CompiledHandlers.$registry.withValue(registry) {
                await Self.main(nil)
            }
        } catch {
            Self.exit(withError: error)
        }
    }
}
