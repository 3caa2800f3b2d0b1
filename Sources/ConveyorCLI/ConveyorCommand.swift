import ArgumentParser

/// The `conveyor` command line: the root command and its subcommands.
///
/// A worker executable is one line: `await ConveyorCommand.main()`.
public struct ConveyorCommand: AsyncParsableCommand {
    /// The command's description and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "conveyor",
        abstract: "A worker runtime for Kafka.",
        subcommands: [
            BrokerCommand.self,
            ProduceCommand.self,
            ConsumeCommand.self,
            BenchCommand.self,
            BenchConsumerCommand.self,
        ]
    )

    /// Creates the command (used by the argument parser).
    public init() {}
}
