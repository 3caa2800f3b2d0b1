import Foundation
import Logging
import RdKafka
import Synchronization

/// What happens to a record after its first attempt failed: retries with backoff (off its lane), then a retry topic or the
/// dead-letter topic, or a skip, as the handler's classification and retry policy say.
final class FailureHandler: Sendable {
    /// How the record left.
    enum Outcome: Sendable {
        /// A retry succeeded.
        case handled
        /// It is in the dead-letter topic (its delivery was confirmed).
        case deadLettered
        /// It is in the handler's next retry topic (its delivery was confirmed).
        case sentToRetryTopic
        /// Acknowledged without effect.
        case skipped
        /// Its partition went away (or the process is stopping) first: not finished, the next owner gets it.
        case abandoned
    }

    /// The handler, called for retries as for first attempts.
    let call: HandlerCall
    let settings: RuntimeConfiguration.HandlerSettings
    let policy: RetryPolicy
    /// The producer of dead letters: its own, with a short delivery timeout, so that a failing write is known
    /// (and logged, counted and tried again) within seconds.
    let deadLetters: KafkaProducer
    let metrics: HandlerMetrics
    /// The handler's delayed retry topics, if it has any.
    let retryTopics: RetryTopics?
    /// Records waiting for an unreachable idempotency store right now (the health state).
    let storeWaits = Atomic<Int>(0)
    /// Records whose dead-letter write is failing right now (the health state).
    let deadLetterBlocked = Atomic<Int>(0)
    /// Source partitions with a record whose dead-letter (or retry-topic) write is failing, and how many: the
    /// runtime pauses them until the writes succeed.
    private let blockedPartitions = Mutex<[TopicPartition: Int]>([:])
    /// The share of dead letters among recent records.
    private let floodGuard: Mutex<FloodGuard>
    /// Set when the process stops: held records and failing dead-letter writes give up (and are redelivered).
    private let isStopping = Atomic<Bool>(false)

    init(
        call: HandlerCall,
        settings: RuntimeConfiguration.HandlerSettings,
        policy: RetryPolicy,
        deadLetters: KafkaProducer,
        metrics: HandlerMetrics,
        retryTopics: RetryTopics?,
        floodGuard: FloodGuard
    ) {
        self.call = call
        self.retryTopics = retryTopics
        self.floodGuard = Mutex(floodGuard)
        self.settings = settings
        self.policy = policy
        self.deadLetters = deadLetters
        self.metrics = metrics
    }

    /// Retries, dead-letters or skips `kafkaRecord`, whose first attempt threw `error`. `mayContinue` says
    /// whether the record's partition is still this process's to work on. Returns the outcome and the number of
    /// failed attempts.
    func recover(
        _ kafkaRecord: KafkaRecord,
        record: Record,
        after error: any Error,
        attempt firstAttempt: Int,
        mayContinue: () -> Bool
    ) async -> (Outcome, failures: Int) {
        var failures = 0
        let outcome = await self.recover(
            kafkaRecord, record: record, after: error, attempt: firstAttempt, failures: &failures, mayContinue: mayContinue
        )
        return (outcome, failures)
    }

    private func recover(
        _ kafkaRecord: KafkaRecord,
        record: Record,
        after error: any Error,
        attempt firstAttempt: Int,
        failures: inout Int,
        mayContinue: () -> Bool
    ) async -> Outcome {
        let clock = ContinuousClock()
        let firstFailure = clock.now
        var failure = (attempt: firstAttempt, error: error, at: firstFailure)
        var random = SystemRandomNumberGenerator()
        var storeWait = Duration.milliseconds(100)
        var waitingForStore = false
        defer {
            if waitingForStore {
                self.unblock(kafkaRecord.topicPartition, for: .unreachableStore)
            }
        }
        while true {
            if let waiting = failure.error as? IdempotencyError, waiting.isWait {
                // Not an attempt: the key is held elsewhere, or the store is unreachable (fail closed: the
                // handler never runs without a claim, and nothing is dead-lettered or committed meanwhile).
                let wait: Duration
                switch waiting {
                case .storeUnavailable(let error):
                    if !waitingForStore {
                        waitingForStore = true
                        self.block(kafkaRecord.topicPartition, for: .unreachableStore)
                        self.call.context(for: record, attempt: failure.attempt).logger.error(
                            "idempotency store unavailable; the partition pauses until it is back", metadata: ["error": "\(error)"]
                        )
                    }
                    wait = storeWait
                    storeWait = min(storeWait * 2, .seconds(5))
                case .heldElsewhere(_, let until):
                    wait = .milliseconds(min(1_000, max(50, Int(until.timeIntervalSinceNow * 1000))))
                case .claimLost:
                    wait = .milliseconds(50)
                case .missingKey, .conflict:
                    wait = .zero
                }
                try? await Task.sleep(for: wait)
                guard mayContinue(), !self.isStopping.load(ordering: .relaxed) else { return .abandoned }
                do {
                    try await self.call(record, attempt: failure.attempt)
                    return .handled
                } catch {
                    failure = (failure.attempt, error, clock.now)
                    continue
                }
            }
            if waitingForStore {
                waitingForStore = false
                self.unblock(kafkaRecord.topicPartition, for: .unreachableStore)
            }
            failures += 1
            self.metrics.increment(.failures, topic: record.topic)
            let action = self.call.handler.classify(failure.error)
            let logger = self.call.context(for: record, attempt: failure.attempt).logger
            switch action {
            case .skip:
                logger.notice("Record skipped", metadata: ["error": "\(failure.error)"])
                self.metrics.increment(.skips, topic: record.topic)
                return .skipped
            case .deadLetter, .retry:
                let exhausted = failure.attempt - firstAttempt + 1 >= self.policy.maxAttempts
                guard action == .retry, !exhausted else {
                    let reason: DeadLetter.Reason =
                        switch (action, failure.error as? IdempotencyError) {
                        case (_, .missingKey?): .missingIdempotencyKey
                        case (_, .conflict?): .idempotencyConflict
                        case (.deadLetter, _): .nonRetryable
                        default: .attemptsExhausted
                        }
                    let given = DeadLetter.Failure(
                        reason: reason, attempts: failure.attempt, firstFailure: firstFailure,
                        lastFailure: failure.at, error: failure.error
                    )
                    if action == .retry, let retryTopics = self.retryTopics {
                        let stage = (RetryTopics.stage(of: kafkaRecord)?.stage ?? -1) + 1
                        if stage < retryTopics.delays.count {
                            return await self.sendToRetryTopic(
                                kafkaRecord, stage: stage, topics: retryTopics, failure: given, logger: logger,
                                mayContinue: mayContinue
                            )
                        }
                    }
                    return await self.deadLetter(kafkaRecord, failure: given, logger: logger, mayContinue: mayContinue)
                }
                let wait = self.policy.delay(afterAttempt: failure.attempt, using: &random)
                logger.warning(
                    "Handler failed; retrying",
                    metadata: ["attempt": "\(failure.attempt)", "retry-in-ms": "\(wait.wholeMilliseconds)",
                               "error": "\(failure.error)"]
                )
                self.metrics.increment(.retries, topic: record.topic)
                try? await Task.sleep(for: wait)
                guard mayContinue() else { return .abandoned }
                let attempt = failure.attempt + 1
                self.metrics.increment(.attempts, topic: record.topic)
                do {
                    try await self.call(record, attempt: attempt)
                    return .handled
                } catch {
                    failure = (attempt, error, clock.now)
                }
            }
        }
    }

    /// The process stops: records held by the flood guard or a failing dead-letter write are given up.
    func stop() {
        self.isStopping.store(true, ordering: .relaxed)
    }

    /// What a blocked record waits for.
    private enum Block {
        case failingWrite
        case unreachableStore
    }

    /// A record of `partition` starts waiting: the partition pauses until every record of it stopped waiting.
    private func block(_ partition: TopicPartition, for reason: Block) {
        switch reason {
        case .failingWrite: self.deadLetterBlocked.add(1, ordering: .relaxed)
        case .unreachableStore: self.storeWaits.add(1, ordering: .relaxed)
        }
        self.blockedPartitions.withLock { $0[partition, default: 0] += 1 }
    }

    /// The record of `partition` that ``block(_:for:)`` counted stopped waiting.
    private func unblock(_ partition: TopicPartition, for reason: Block) {
        switch reason {
        case .failingWrite: self.deadLetterBlocked.subtract(1, ordering: .relaxed)
        case .unreachableStore: self.storeWaits.subtract(1, ordering: .relaxed)
        }
        self.blockedPartitions.withLock { partitions in
            partitions[partition, default: 1] -= 1
            if partitions[partition] == 0 {
                partitions[partition] = nil
            }
        }
    }

    /// The source partitions waiting for a failing write.
    var partitionsBlockedByWrites: Set<TopicPartition> {
        self.blockedPartitions.withLock { Set($0.keys) }
    }

    /// Records finished, for the flood guard's window.
    func noteFinished(_ count: Int) {
        self.floodGuard.withLock { $0.finished(count) }
    }

    /// Whether the flood guard tripped (the handler is paused).
    var isFloodGuardTripped: Bool { self.floodGuard.withLock { $0.isTripped } }

    /// Dead-letters a record that was running when a process died `crashes` times, without running it again.
    func quarantine(
        _ kafkaRecord: KafkaRecord, record: Record, crashes: Int, mayContinue: () -> Bool
    ) async -> Outcome {
        let now = ContinuousClock.now
        let logger = self.call.context(for: record, attempt: crashes).logger
        logger.error("Record quarantined: it was running when a process died", metadata: ["crashes": "\(crashes)"])
        self.metrics.increment(.quarantines, topic: record.topic)
        return await self.deadLetter(
            kafkaRecord,
            failure: DeadLetter.Failure(
                reason: .crash, attempts: crashes, firstFailure: now, lastFailure: now, error: CrashQuarantine(crashes: crashes)
            ),
            logger: logger,
            mayContinue: mayContinue
        )
    }

    /// Writes the dead-letter record and waits for Kafka to confirm it, trying again with backoff while the
    /// write fails (the record stays in flight meanwhile, so nothing is committed past it).
    private func deadLetter(
        _ kafkaRecord: KafkaRecord,
        failure: DeadLetter.Failure,
        logger: Logger,
        mayContinue: () -> Bool
    ) async -> Outcome {
        let (admitted, justTripped, share, maxShare) = self.floodGuard.withLock { guardState in
            let wasTripped = guardState.isTripped
            let admitted = guardState.admitDeadLetter()
            return (admitted, !wasTripped && guardState.isTripped, guardState.recentShare, guardState.maxShare)
        }
        guard admitted else {
            if justTripped {
                logger.critical(
                    "Flood guard: too many records dead-lettered; the handler pauses instead (restart it once fixed)",
                    metadata: ["recent-dead-letter-share": "\(share)", "max-share": "\(maxShare)"]
                )
            }
            // Held, not dead-lettered: nothing is committed past it; the next owner (or a restart) gets it again.
            while mayContinue(), !self.isStopping.load(ordering: .relaxed) {
                try? await Task.sleep(for: .milliseconds(50))
            }
            return .abandoned
        }
        let base = RetryTopics.stage(of: kafkaRecord)?.originalTopic ?? kafkaRecord.topic
        let topic = self.settings.deadLetterTopic ?? base + ".dlq"
        let message = DeadLetter.message(
            for: kafkaRecord, to: topic, handler: self.settings.name, group: self.settings.groupID, failure: failure,
            now: (Int64(Date().timeIntervalSince1970 * 1000), ContinuousClock.now)
        )
        guard let report = await self.write(message, for: kafkaRecord, logger: logger, mayContinue: mayContinue) else {
            return .abandoned
        }
        logger.error(
            "Record dead-lettered",
            metadata: ["reason": "\(failure.reason.rawValue)", "attempts": "\(failure.attempts)",
                       "error": "\(failure.error)", "dead-letter": "\(topic)[\(report.partition)]@\(report.offset)"]
        )
        self.metrics.increment(.deadLetters, topic: kafkaRecord.topic, reason: failure.reason.rawValue)
        return .deadLettered
    }

    /// Publishes the record to the handler's retry topic of `stage`, due after that stage's delay.
    private func sendToRetryTopic(
        _ kafkaRecord: KafkaRecord,
        stage: Int,
        topics: RetryTopics,
        failure: DeadLetter.Failure,
        logger: Logger,
        mayContinue: () -> Bool
    ) async -> Outcome {
        let base = RetryTopics.stage(of: kafkaRecord)?.originalTopic ?? kafkaRecord.topic
        let topic = topics.topic(for: base, stage: stage)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let due = now + Int64(topics.delays[stage].wholeMilliseconds)
        let message = DeadLetter.retryMessage(
            for: kafkaRecord, to: topic, stage: stage, due: due, failure: failure, now: (now, ContinuousClock.now)
        )
        guard let report = await self.write(message, for: kafkaRecord, logger: logger, mayContinue: mayContinue) else {
            return .abandoned
        }
        logger.warning(
            "Record sent to a retry topic",
            metadata: ["attempts": "\(failure.attempts)", "error": "\(failure.error)",
                       "retry": "\(topic)[\(report.partition)]@\(report.offset)", "due-in-ms": "\(due - now)"]
        )
        self.metrics.increment(.retryTopicPublishes, topic: kafkaRecord.topic)
        return .sentToRetryTopic
    }

    /// Writes `message` and waits for Kafka to confirm it, trying again with backoff while the write fails; `nil`
    /// if the record's partition went away (or the process stops) first.
    private func write(
        _ message: KafkaProducerMessage, for source: KafkaRecord, logger: Logger, mayContinue: () -> Bool
    ) async -> KafkaDeliveryReport? {
        var wait = Duration.milliseconds(100)
        var blocked = false
        let partition = source.topicPartition
        defer {
            if blocked {
                self.unblock(partition, for: .failingWrite)
            }
        }
        while true {
            do {
                return try await self.deadLetters.send(message)
            } catch {
                self.metrics.increment(.deadLetterFailures, topic: message.topic)
                if !blocked {
                    blocked = true
                    self.block(partition, for: .failingWrite)
                }
                logger.error(
                    "Write to \(message.topic) failed; its partition pauses and the record is written again",
                    metadata: ["error": "\(error)", "retry-in-ms": "\(wait.wholeMilliseconds)"]
                )
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(10))
                guard mayContinue(), !self.isStopping.load(ordering: .relaxed) else { return nil }
            }
        }
    }
}

/// The error a quarantined record is dead-lettered with.
struct CrashQuarantine: Error, CustomStringConvertible {
    var crashes: Int
    var description: String { "the record was running when a process died \(self.crashes) times" }
}
