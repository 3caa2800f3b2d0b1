import RdKafka

extension EmbeddedKafka {
    /// A client configuration for this cluster with the short timeouts tests need: the mock waits
    /// `session.timeout.ms` - 1 s for every rebalance after the first, so the session is 6 s instead of 45 s.
    public func testConfiguration(groupID: String? = nil) throws -> KafkaConfiguration {
        var configuration = try KafkaConfiguration(bootstrapServers: self.bootstrapServers, groupID: groupID)
        configuration.sessionTimeout = .seconds(6)
        configuration.heartbeatInterval = .milliseconds(500)
        return configuration
    }
}
