import ArgumentParser
import Configuration
import Conveyor
import Foundation

/// Where a runtime configuration comes from: `--config FILE`, `CONVEYOR_*` environment variables, and flags,
/// flags winning over the environment, which wins over the file.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "The YAML configuration file (see config/conveyor.yml).")
    var config: String = "config/conveyor.yml"

    @Option(name: [.customShort("b"), .long], help: "Overrides kafka.bootstrap_servers.")
    var bootstrapServers: String?

    @Option(name: .customLong("handler"), help: "Overrides handlers.enabled (repeatable).")
    var handlers: [String] = []

    @Option(help: "Overrides workers.concurrency.")
    var concurrency: Int?

    /// The layered reader: flags, then the environment, then the file.
    func makeReader() async throws -> ConfigReader {
        guard FileManager.default.fileExists(atPath: self.config) else {
            throw ValidationError("--config \(self.config): no such file")
        }
        var flags: [AbsoluteConfigKey: ConfigValue] = [:]
        if let bootstrapServers = self.bootstrapServers {
            flags[["kafka", "bootstrap_servers"]] = .init(.string(bootstrapServers), isSecret: false)
        }
        if !self.handlers.isEmpty {
            flags[["handlers", "enabled"]] = .init(.stringArray(self.handlers), isSecret: false)
        }
        if let concurrency = self.concurrency {
            flags[["workers", "concurrency"]] = .init(.string(String(concurrency)), isSecret: false)
        }
        let prefix = "CONVEYOR_"
        let environment = ProcessInfo.processInfo.environment.reduce(into: [String: String]()) { result, entry in
            if entry.key.hasPrefix(prefix) {
                result[String(entry.key.dropFirst(prefix.count))] = entry.value
            }
        }
        do {
            return ConfigReader(providers: [
                InMemoryProvider(name: "flags", values: flags),
                EnvironmentVariablesProvider(environmentVariables: environment),
                try await FileProvider<YAMLSnapshot>(filePath: .init(self.config)),
            ])
        } catch {
            throw ValidationError("--config \(self.config): not a readable YAML file: \(error)")
        }
    }
}

/// The handlers compiled into the running executable.
enum CompiledHandlers {
    /// Set by ``ConveyorCommand/main(handlers:)`` for the whole run.
    @TaskLocal static var registry: HandlerRegistry?

    static func current() throws -> HandlerRegistry {
        guard let registry = Self.registry else {
            throw ValidationError("this executable registers no handlers; call ConveyorCommand.main(handlers:)")
        }
        return registry
    }
}
