import ArgumentParser
import Conveyor

/// `conveyor check-config`: validates a configuration and prints each problem with its key path.
struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration (file, CONVEYOR_* environment and flags); print each problem."
    )

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        let reader = try await self.runtime.makeReader()
        var problems = RuntimeConfiguration.problems(in: reader).map(\.description)
        if problems.isEmpty {
            let configuration = try RuntimeConfiguration(reader: reader)
            let registry = try CompiledHandlers.current()
            for handler in configuration.handlers where !registry.names.contains(handler.name) {
                problems.append(
                    "handlers.enabled: no handler named '\(handler.name)'; registered: \(registry.names.joined(separator: ", "))"
                )
            }
        }
        guard problems.isEmpty else {
            for problem in problems {
                StandardOutput.write("\(self.runtime.config): \(problem)\n")
            }
            throw ExitCode.failure
        }
        StandardOutput.write("\(self.runtime.config): ok\n")
    }
}
