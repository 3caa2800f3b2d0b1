import ArgumentParser
import RdKafka

/// How a subcommand reaches Kafka: `--bootstrap-servers` and librdkafka pass-through properties (`-X`).
struct ClientOptions: ParsableArguments {
    @Option(name: [.customShort("b"), .long], help: "Kafka brokers, as host:port[,host:port...].")
    var bootstrapServers: String

    @Option(
        name: .customShort("X"),
        help: ArgumentHelp("A librdkafka property, as name=value (repeatable).", valueName: "name=value")
    )
    var properties: [String] = []

    @Option(help: "Seconds to wait for a first answer from a broker.")
    var connectTimeout: Int = 10

    /// Builds a client configuration; a malformed `-X` or a property librdkafka rejects is a validation error
    /// that names it.
    func makeConfiguration(groupID: String? = nil) throws -> KafkaConfiguration {
        var configuration = try KafkaConfiguration(bootstrapServers: self.bootstrapServers, groupID: groupID)
        configuration.connectTimeout = .seconds(self.connectTimeout)
        for property in self.properties {
            guard let equals = property.firstIndex(of: "="), equals != property.startIndex else {
                throw ValidationError("-X \(property): expected name=value")
            }
            let name = String(property[..<equals])
            let value = String(property[property.index(after: equals)...])
            do {
                try configuration.set(name, value)
            } catch let error as KafkaError {
                throw ValidationError("-X \(property): \(error.message)")
            }
        }
        return configuration
    }

    func validate() throws {
        guard self.connectTimeout > 0 else {
            throw ValidationError("--connect-timeout: must be at least 1 second, got \(self.connectTimeout)")
        }
    }
}

/// A `--topic name:partitions` argument.
struct TopicSpecification: ExpressibleByArgument, Sendable {
    var name: String
    var partitions: Int

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else { return nil }
        self.name = String(parts[0])
        if parts.count == 2 {
            guard let partitions = Int(parts[1]), partitions > 0 else { return nil }
            self.partitions = partitions
        } else {
            self.partitions = 1
        }
    }
}
