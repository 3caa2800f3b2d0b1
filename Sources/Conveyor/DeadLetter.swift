import RdKafka

/// The dead-letter topic's record format: the original key, value and headers byte for byte, plus headers that
/// say where the record came from and why it was given up.
public enum DeadLetter {
    /// Header names Conveyor adds to a dead-lettered record (all values UTF-8 text; times in milliseconds since
    /// 1970 UTC).
    public enum Header {
        public static let originalTopic = "conveyor.original.topic"
        public static let originalPartition = "conveyor.original.partition"
        public static let originalOffset = "conveyor.original.offset"
        /// The original record's timestamp, when it had one.
        public static let originalTimestamp = "conveyor.original.timestamp"
        public static let handler = "conveyor.handler"
        public static let group = "conveyor.group"
        public static let attempts = "conveyor.attempts"
        public static let firstFailure = "conveyor.failure.first"
        public static let lastFailure = "conveyor.failure.last"
        /// The Swift type of the last error.
        public static let errorType = "conveyor.error.type"
        /// The last error's description, truncated to ``DeadLetter/maxErrorMessageBytes``.
        public static let errorMessage = "conveyor.error.message"
        /// Why the record was dead-lettered: `attempts-exhausted`, `non-retryable`, `crash`,
        /// `missing-idempotency-key` or `idempotency-conflict`.
        public static let reason = "conveyor.reason"
        /// On a record of a retry topic: which of the handler's retry topics it is in (from 0).
        public static let retryStage = "conveyor.retry.stage"
        /// On a record of a retry topic: when it is due to run again.
        public static let retryDue = "conveyor.retry.due"

        /// Every header Conveyor adds; a replay removes them, so that the record starts afresh.
        public static let all: Set<String> = [
            originalTopic, originalPartition, originalOffset, originalTimestamp, handler, group, attempts,
            firstFailure, lastFailure, errorType, errorMessage, reason, retryStage, retryDue,
        ]
    }

    /// Why a record was dead-lettered.
    public enum Reason: String, Sendable, CaseIterable {
        /// The handler failed on every allowed attempt.
        case attemptsExhausted = "attempts-exhausted"
        /// The handler (or its classifier) said retrying cannot help.
        case nonRetryable = "non-retryable"
        /// The record was running when a process died, `crash.max` times.
        case crash
        /// The handler requires an idempotency key and the record has none.
        case missingIdempotencyKey = "missing-idempotency-key"
        /// The record's idempotency key completed before with another payload.
        case idempotencyConflict = "idempotency-conflict"
    }

    /// Error messages longer than this (in UTF-8 bytes) are cut.
    public static let maxErrorMessageBytes = 1_024

    /// What the runtime knows about a record it gives up on.
    struct Failure: Sendable {
        var reason: Reason
        var attempts: Int
        var firstFailure: ContinuousClock.Instant
        var lastFailure: ContinuousClock.Instant
        var error: any Error
    }

    /// The dead-letter record of `record`, for `topic`.
    static func message(
        for record: KafkaRecord,
        to topic: String,
        handler: String,
        group: String,
        failure: Failure,
        now: (wall: Int64, monotonic: ContinuousClock.Instant)
    ) -> KafkaProducerMessage {
        Self.forwarded(record, to: topic, failure: failure, now: now, adding: [
            KafkaHeader(name: Header.handler, string: handler),
            KafkaHeader(name: Header.group, string: group),
            KafkaHeader(name: Header.reason, string: failure.reason.rawValue),
        ])
    }

    /// The record of `record` for retry topic `topic` (stage `stage`), due at `due` (ms since 1970).
    static func retryMessage(
        for record: KafkaRecord,
        to topic: String,
        stage: Int,
        due: Int64,
        failure: Failure,
        now: (wall: Int64, monotonic: ContinuousClock.Instant)
    ) -> KafkaProducerMessage {
        Self.forwarded(record, to: topic, failure: failure, now: now, adding: [
            KafkaHeader(name: Header.retryStage, string: String(stage)),
            KafkaHeader(name: Header.retryDue, string: String(due)),
        ])
    }

    /// `record` for `topic`, keyed like the original (so that one key's records keep their order there): its key,
    /// value and headers, its provenance, the failure, and `extra` headers.
    private static func forwarded(
        _ record: KafkaRecord,
        to topic: String,
        failure: Failure,
        now: (wall: Int64, monotonic: ContinuousClock.Instant),
        adding extra: [KafkaHeader]
    ) -> KafkaProducerMessage {
        var headers = Self.provenance(of: record, firstFailure: Self.wall(failure.firstFailure, now: now))
        headers.append(KafkaHeader(name: Header.attempts, string: String(failure.attempts)))
        headers.append(KafkaHeader(name: Header.lastFailure, string: Self.wall(failure.lastFailure, now: now)))
        headers.append(KafkaHeader(name: Header.errorType, string: String(reflecting: type(of: failure.error))))
        headers.append(KafkaHeader(name: Header.errorMessage, value: Self.truncated("\(failure.error)")))
        return KafkaProducerMessage(
            topic: topic, partition: nil, key: record.key.map(Array.init), value: record.value.map(Array.init),
            headers: headers + extra
        )
    }

    /// The record's own headers (without Conveyor's), then where it came from first: the provenance headers it
    /// carries if it comes from a retry topic, its own position otherwise; and when it first failed.
    private static func provenance(of record: KafkaRecord, firstFailure: String) -> [KafkaHeader] {
        func carried(_ name: String) -> String? {
            record.headers.last { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
        }
        var headers = record.headers.filter { !Header.all.contains($0.name) }
        if let topic = carried(Header.originalTopic) {
            headers.append(KafkaHeader(name: Header.originalTopic, string: topic))
            for name in [Header.originalPartition, Header.originalOffset, Header.originalTimestamp] {
                if let value = carried(name) {
                    headers.append(KafkaHeader(name: name, string: value))
                }
            }
        } else {
            headers.append(KafkaHeader(name: Header.originalTopic, string: record.topic))
            headers.append(KafkaHeader(name: Header.originalPartition, string: String(record.partition)))
            headers.append(KafkaHeader(name: Header.originalOffset, string: String(record.offset)))
            if let timestamp = record.timestamp {
                headers.append(KafkaHeader(name: Header.originalTimestamp, string: String(timestamp.millisecondsSinceEpoch)))
            }
        }
        headers.append(KafkaHeader(name: Header.firstFailure, string: carried(Header.firstFailure) ?? firstFailure))
        return headers
    }

    private static func wall(_ instant: ContinuousClock.Instant, now: (wall: Int64, monotonic: ContinuousClock.Instant)) -> String {
        String(now.wall - Int64((now.monotonic - instant).wholeMilliseconds))
    }

    /// `text` as UTF-8, cut to at most ``maxErrorMessageBytes`` at a character boundary.
    static func truncated(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for character in text {
            let utf8 = Array(String(character).utf8)
            guard bytes.count + utf8.count <= Self.maxErrorMessageBytes else { break }
            bytes += utf8
        }
        return bytes
    }
}
