extension Duration {
    /// Whole milliseconds, rounded down: the unit of every timeout in the configuration and in librdkafka.
    var wholeMilliseconds: Int {
        let (seconds, attoseconds) = self.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
