import RdKafka

/// A handler's delayed retry topics (like Spring Kafka's non-blocking retries): after its in-place attempts, a
/// failing record is published to `<topic>.retry.<delay>` of the next stage, and its source offset committed; the
/// handler's consumer also reads those topics and runs each record again once it is due.
struct RetryTopics: Sendable {
    /// The delay of each stage, in order.
    let delays: [Duration]

    /// The retry topic of `stage` for records of `topic`.
    func topic(for topic: String, stage: Int) -> String {
        "\(topic).retry.\(Self.label(self.delays[stage]))"
    }

    /// Every retry topic of the handler's `topics`.
    func topics(for topics: [String]) -> [String] {
        topics.flatMap { topic in self.delays.indices.map { self.topic(for: topic, stage: $0) } }
    }

    /// `5s` for whole seconds, `250ms` otherwise.
    static func label(_ delay: Duration) -> String {
        let milliseconds = delay.wholeMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    /// Where a record of a retry topic stands, from its headers.
    struct Stage: Sendable {
        /// Its stage (from 0).
        var stage: Int
        /// When it is due, in milliseconds since 1970.
        var due: Int64
        /// Attempts so far, over every stage.
        var attempts: Int
        /// Its original topic.
        var originalTopic: String
    }

    /// The stage of `record`, if it comes from a retry topic (it carries the headers).
    static func stage(of record: KafkaRecord) -> Stage? {
        func header(_ name: String) -> String? {
            record.headers.last { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
        }
        guard let stage = header(DeadLetter.Header.retryStage).flatMap(Int.init),
            let due = header(DeadLetter.Header.retryDue).flatMap(Int64.init),
            let attempts = header(DeadLetter.Header.attempts).flatMap(Int.init),
            let topic = header(DeadLetter.Header.originalTopic)
        else { return nil }
        return Stage(stage: stage, due: due, attempts: attempts, originalTopic: topic)
    }
}
