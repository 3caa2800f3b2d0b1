import ArgumentParser
import Logging
import RdKafka
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `conveyor broker`: runs an embedded Kafka cluster (librdkafka's mock cluster) until SIGTERM or SIGINT.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run an embedded Kafka broker on 127.0.0.1 until SIGTERM or SIGINT.",
        discussion: """
            Prints the bootstrap servers on standard output (one line), then serves any Kafka client: kcat, \
            other conveyor processes. Topics not created with --topic are auto-created with 4 partitions \
            when a client first names them.
            """
    )

    @Option(help: "Number of brokers in the cluster.")
    var brokers: Int = 1

    @Option(help: ArgumentHelp("A topic to create, as name:partitions (repeatable).", valueName: "name:partitions"))
    var topic: [TopicSpecification] = []

    @Option(help: "Also write the bootstrap servers to this file.")
    var bootstrapFile: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...32).contains(self.brokers) else {
            throw ValidationError("--brokers: must be between 1 and 32, got \(self.brokers)")
        }
        for topic in self.topic where topic.partitions > 100_000 {
            throw ValidationError("--topic \(topic.name): too many partitions (\(topic.partitions))")
        }
    }

    func run() async throws {
        let logger = self.logging.makeLogger(label: "conveyor.broker")
        let kafka = try EmbeddedKafka(brokers: self.brokers, logger: logger)
        for topic in self.topic {
            try kafka.createTopic(topic.name, partitions: topic.partitions, replicationFactor: min(self.brokers, 3))
        }
        if let path = self.bootstrapFile {
            try Self.write(kafka.bootstrapServers + "\n", to: path)
        }
        StandardOutput.write(kafka.bootstrapServers + "\n")
        logger.info(
            "Embedded Kafka running",
            metadata: ["bootstrap": "\(kafka.bootstrapServers)", "topics": "\(self.topic.map(\.name))"]
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [EmbeddedBrokerService(kafka: kafka)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("Embedded Kafka stopped")
    }

    private static func write(_ text: String, to path: String) throws {
        guard let file = fopen(path, "w") else {
            throw ValidationError("--bootstrap-file \(path): cannot open for writing (errno \(errno))")
        }
        defer { fclose(file) }
        guard fputs(text, file) >= 0 else {
            throw ValidationError("--bootstrap-file \(path): cannot write (errno \(errno))")
        }
    }
}

/// Keeps an embedded Kafka cluster alive until graceful shutdown.
struct EmbeddedBrokerService: Service {
    let kafka: EmbeddedKafka

    func run() async throws {
        try await gracefulShutdown()
        withExtendedLifetime(self.kafka) {}
    }
}
