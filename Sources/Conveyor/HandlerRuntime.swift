import CoreMetrics
import Dispatch
import Foundation
import Logging
import RdKafka
import ServiceLifecycle
import Synchronization

/// Runs one handler in its consumer group: hands records to the worker pool by lane, tracks their offsets,
/// commits only what is finished, applies the process budget, and drains partitions before releasing them.
final class HandlerRuntime: KafkaConsumerDelegate {
    private struct State {
        var tracker = OffsetTracker()
        /// Records dispatched and not finished, over all partitions (including abandoned ones still running).
        var inFlight = 0
        /// Signalled on every completion while the poll thread waits for revoked partitions to drain.
        var drainSignal: DispatchSemaphore?
        /// Waiting for `inFlight` to reach zero (shutdown).
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var isShuttingDown = false
        /// Ordering keys with a record waiting for a retry, and the records queued behind it, in order.
        var parked: [OrderingKey: [Parked]] = [:]
        /// Partitions of retry topics paused until their first record is due (ms since 1970).
        var heldUntilDue: [TopicPartition: Int64] = [:]
        var sentToRetryTopics = 0
        /// Records abandoned at a drain or shutdown deadline.
        var abandoned: [TopicPartitionOffset] = []
        var consumer: KafkaConsumer?
        /// Records finished: handled, dead-lettered or skipped.
        var finished = 0
        var failedAttempts = 0
        var deadLettered = 0
        var skipped = 0
    }

    let handler: any Handler
    let settings: RuntimeConfiguration.HandlerSettings
    private let configuration: RuntimeConfiguration
    private let pool: WorkerPool
    private let budget: ProcessBudget
    private let producer: KafkaProducer
    private let logger: Logger
    private let state = Mutex(State())
    /// The lane runs in progress. Apart from ``state``, whose lock the poll thread holds while it dispatches a
    /// batch: lanes register their runs without waiting for it. Taken before ``state`` when both are needed.
    private let runningProgress = Mutex<[ObjectIdentifier: LaneRunProgress]>([:])
    /// The lane of each record; used by the poll thread only, so never contended.
    private let lanes: Mutex<LaneAssignment>
    private let call: HandlerCall
    private let metrics: HandlerMetrics
    private let failures: FailureHandler
    private let crashes: CrashCounts
    private let journal: CrashJournal
    private let retryTopics: RetryTopics?
    /// The names of the retry topics this handler reads (empty without retry topics).
    private let retryTopicNames: Set<String>
    /// Keys with a record waiting for a retry (``State/parked``), read without the lock per record.
    private let parkedKeys = Atomic<Int>(0)
    /// Counts revocations, losses and the start of shutdown, so that a worker notices one without taking the lock
    /// per record.
    private let revocations = Atomic<Int>(0)

    init(
        handler: any Handler,
        settings: RuntimeConfiguration.HandlerSettings,
        configuration: RuntimeConfiguration,
        pool: WorkerPool,
        budget: ProcessBudget,
        producer: KafkaProducer,
        deadLetters: KafkaProducer,
        metrics: any MetricsFactory,
        crashes: CrashCounts,
        journal: CrashJournal,
        idempotencyStore: any IdempotencyStore,
        owner: String,
        logger: Logger
    ) {
        self.crashes = crashes
        self.journal = journal
        self.retryTopics = settings.retryTopicDelays.isEmpty ? nil : RetryTopics(delays: settings.retryTopicDelays)
        let handlerMetrics = HandlerMetrics(handler: settings.name, factory: metrics)
        self.metrics = handlerMetrics
        let sources = settings.topics ?? handler.topics
        self.retryTopicNames = Set(self.retryTopics?.topics(for: sources) ?? [])
        self.handler = handler
        self.settings = settings
        self.configuration = configuration
        self.pool = pool
        self.budget = budget
        self.producer = producer
        var logger = logger
        logger[metadataKey: "handler"] = "\(settings.name)"
        self.logger = logger
        self.lanes = Mutex(LaneAssignment(ordering: settings.ordering, pool: pool))
        self.call = HandlerCall(
            handler: handler,
            environment: HandlerEnvironment(handler: settings.name, logger: self.logger, producer: producer),
            idempotency: (settings.idempotency ?? type(of: handler).idempotency).map {
                IdempotentCall(
                    settings: $0, store: idempotencyStore, scope: settings.name, owner: owner,
                    duplicates: DuplicateCounter(), metrics: handlerMetrics
                )
            }
        )
        self.failures = FailureHandler(
            call: self.call, settings: settings, policy: configuration.retryPolicy(for: settings),
            deadLetters: deadLetters, metrics: self.metrics, retryTopics: self.retryTopics,
            floodGuard: FloodGuard(window: configuration.floodGuardWindow, maxShare: configuration.floodGuardMaxShare)
        )
    }

    /// The topics this runtime subscribes to.
    var topics: [String] {
        let sources = self.settings.topics ?? self.handler.topics
        return sources + (self.retryTopics?.topics(for: sources) ?? [])
    }

    /// Counters for summaries.
    var statistics: HandlerStatistics {
        self.state.withLock { state in
            HandlerStatistics(
                name: self.settings.name, group: self.settings.groupID,
                // A duplicate is counted when found, and finished a moment later: never below zero meanwhile.
                handled: max(0, state.finished - state.deadLettered - state.skipped - state.sentToRetryTopics
                    - (self.call.idempotency?.duplicates.count.load(ordering: .relaxed) ?? 0)),
                failedAttempts: state.failedAttempts, deadLettered: state.deadLettered, skipped: state.skipped,
                sentToRetryTopics: state.sentToRetryTopics,
                inFlight: state.inFlight,
                isDeadLetterBlocked: self.failures.deadLetterBlocked.load(ordering: .relaxed) > 0,
                partitionsPausedForWrites: self.failures.partitionsBlockedByWrites,
                duplicatesSkipped: self.call.idempotency?.duplicates.count.load(ordering: .relaxed) ?? 0,
                isIdempotencyStoreUnavailable: self.failures.storeWaits.load(ordering: .relaxed) > 0,
                isPausedByFloodGuard: self.failures.isFloodGuardTripped
            )
        }
    }

    /// The records abandoned so far (at a drain or shutdown deadline), for the exit report.
    var abandoned: [TopicPartitionOffset] { self.state.withLock { $0.abandoned } }

    // MARK: - Lifecycle

    /// Creates the consumer, subscribes, commits periodically until graceful shutdown, then stops fetching,
    /// drains within the shutdown timeout, commits and leaves the group.
    func run() async throws {
        let consumer = try KafkaConsumer(
            configuration: try self.configuration.consumerConfiguration(
                for: self.settings, readsHeaders: type(of: self.handler).readsHeaders
            ),
            delegate: self,
            logger: self.logger
        )
        self.state.withLock { $0.consumer = consumer }
        defer { self.state.withLock { $0.consumer = nil } }
        self.budget.onResume { [weak self] in self?.reconcilePausesSoon() }
        let collector = Task {
            var seen = (floodGuard: false, blocked: Set<TopicPartition>())
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.collectInterval)
                self.collectCompletions()
                let now = (floodGuard: self.failures.isFloodGuardTripped, blocked: self.failures.partitionsBlockedByWrites)
                if now != seen {
                    seen = now
                    self.reconcilePausesSoon()
                }
            }
        }
        defer { collector.cancel() }
        try await consumer.subscribe(self.topics)
        self.logger.info("Handler started", metadata: ["topics": "\(self.topics)", "group": "\(self.settings.groupID)"])

        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: self.configuration.commitInterval)
                try await self.storeFinished(on: consumer)
            }
        }
        try await self.stop(consumer)
    }

    /// Stores the offsets of finished records; librdkafka's auto-commit timer commits them (it holds commits back
    /// while the group rebalances, which a commit of our own could not know).
    private func storeFinished(on consumer: KafkaConsumer) async throws {
        try await consumer.perform { control in
            let offsets = self.state.withLock { $0.tracker.takeCommittable() }
                .filter { control.assignment.contains($0.topicPartition) }
            guard !offsets.isEmpty else { return }
            try control.store(offsets)
        }
    }

    private func stop(_ consumer: KafkaConsumer) async throws {
        self.state.withLock { $0.isShuttingDown = true }
        self.stopStarting(nil)
        self.failures.stop()
        try? await consumer.perform { self.reconcilePauses($0) }
        let drained = await self.waitUntilIdle(timeout: self.configuration.shutdownTimeout)
        if !drained {
            self.logger.warning("Shutdown timeout passed with records in flight")
        }
        try await consumer.close()
        self.logger.info("Handler stopped", metadata: ["abandoned": "\(self.abandoned.count)"])
    }

    private func waitUntilIdle(timeout: Duration) async -> Bool {
        let deadline = Task {
            try await Task.sleep(for: timeout)
            let waiters = self.state.withLock { state in
                defer { state.idleWaiters.removeAll() }
                return state.idleWaiters
            }
            waiters.forEach { $0.resume() }
        }
        defer { deadline.cancel() }
        await withCheckedContinuation { continuation in
            let idle = self.state.withLock { state in
                if state.inFlight == 0 { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
        return self.state.withLock { $0.inFlight == 0 }
    }

    // MARK: - Dispatch (poll thread)

    func consumer(_ control: KafkaConsumerControl, didReceive records: [KafkaRecord]) {
        // Only the tracker needs the lock; lanes are chosen outside it, so that workers finishing records wait
        // as little as possible.
        let notDue = self.retryTopicNames.isEmpty ? [] : self.holdRecordsNotDue(records, control: control)
        var count = 0
        let tickets = self.state.withLock { state in
            let tickets = state.tracker.dispatch(records, excluding: notDue)
            count = tickets.count { $0 != nil }
            state.inFlight += count
            return tickets
        }
        // Lanes first, then each run's arrays at their final size: no reallocation while appending. The records
        // are read in place (through a buffer), not copied out of the array, which would cost reference counting.
        var laneOf = [Int](repeating: -1, count: records.count)
        var sizes = [Int](repeating: 0, count: self.pool.concurrency)
        records.withUnsafeBufferPointer { records in
            self.lanes.withLock { assignment in
                for index in records.indices where tickets[index] != nil {
                    let lane = assignment.lane(for: records[index])
                    laneOf[index] = lane
                    sizes[lane] += 1
                }
            }
        }
        var runs = sizes.map { LaneRun(batch: records, capacity: $0) }
        records.withUnsafeBufferPointer { records in
            var lastOfLane = [Int](repeating: -1, count: runs.count)
            for index in records.indices {
                guard let ticket = tickets[index] else { continue }
                let lane = laneOf[index]
                let last = lastOfLane[lane]
                let topic = last >= 0 && records[index].hasSameTopic(as: records[last]) ? nil : records[index].topic
                runs[lane].append(index, ticket: ticket, byteCount: records[index].byteCount, topic: topic)
                lastOfLane[lane] = index
            }
        }
        let bytes = runs.reduce(0) { $0 + $1.byteCount }
        let mustPause = self.budget.add(records: count, bytes: bytes)
        // Revocations happen on this thread too, so this is the count the records were dispatched under.
        let revocations = self.revocations.load(ordering: .relaxed)
        for (lane, run) in runs.enumerated() where run.count > 0 {
            self.pool.submit(lane: lane) { await self.run(run, lane: lane, dispatchedAfter: revocations) }
        }
        if mustPause || self.budget.isPaused {
            self.reconcilePauses(control)
        }
    }

    /// Records of retry topics that are not due yet are not dispatched: their partition is paused and sought back
    /// to the first of them, and resumed when it is due. Returns the positions in `records` to leave out (the
    /// first record not due of each partition, and every later one of that partition, held or not).
    private func holdRecordsNotDue(_ records: [KafkaRecord], control: KafkaConsumerControl) -> Set<Int> {
        var skipped = Set<Int>()
        var holds: [TopicPartition: (offset: Int64, due: Int64)] = [:]
        var already = self.state.withLock { Set($0.heldUntilDue.keys) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for (index, record) in records.enumerated() where self.retryTopicNames.contains(record.topic) {
            let partition = record.topicPartition
            if already.contains(partition) {
                skipped.insert(index)
                continue
            }
            guard let stage = RetryTopics.stage(of: record), stage.due > now else { continue }
            holds[partition] = (record.offset, stage.due)
            already.insert(partition)
            skipped.insert(index)
        }
        guard !holds.isEmpty else { return skipped }
        self.state.withLock { state in
            for (partition, hold) in holds {
                state.heldUntilDue[partition] = hold.due
            }
        }
        // Paused first, then sought back: records fetched meanwhile must not arrive before the seek applies.
        self.reconcilePauses(control)
        do {
            try control.seek(holds.map { TopicPartitionOffset($0.key, offset: $0.value.offset) })
        } catch {
            self.logger.error("Cannot hold a retry topic's partition until due", metadata: ["error": "\(error)"])
        }
        for (partition, hold) in holds {
            Task { await self.resume(partition, heldUntil: hold.due, from: now) }
        }
        return skipped
    }

    /// Lets a retry topic's partition fetch again once its first record is due (unless it was revoked, or the
    /// hold renewed, meanwhile).
    private func resume(_ partition: TopicPartition, heldUntil due: Int64, from now: Int64) async {
        try? await Task.sleep(for: .milliseconds(max(0, due - now)))
        guard let consumer = self.state.withLock({ $0.consumer }) else { return }
        try? await consumer.perform { control in
            let released = self.state.withLock { state in
                guard state.heldUntilDue[partition] == due else { return false }
                state.heldUntilDue[partition] = nil
                return true
            }
            if released {
                self.reconcilePauses(control)
            }
        }
    }

    /// Pauses what must not fetch now and resumes the rest. Reading holds while the process's in-flight budget
    /// was spent for less than ``ProcessBudget/holdLimit``. Every assigned partition pauses while the budget is
    /// spent for longer, the flood guard tripped or the handler stops; otherwise only the partitions
    /// with a record waiting for a failing write or an unreachable store, and retry-topic partitions held until
    /// their first record is due. Every pause of this consumer is decided here, so no reason can resume a
    /// partition another one keeps paused. Poll thread only.
    private func reconcilePauses(_ control: KafkaConsumerControl) {
        let assignment = control.assignment
        let (stopping, held) = self.state.withLock { ($0.isShuttingDown, Set($0.heldUntilDue.keys)) }
        // A spent budget holds reading at first, and pauses every partition only if it stays spent.
        let hold = stopping ? nil : self.budget.holdDeadline(now: .now)
        if let hold {
            control.hold(until: hold)
        } else {
            control.endHold()
        }
        let wanted =
            stopping || (self.budget.isPaused && hold == nil) || self.failures.isFloodGuardTripped
            ? assignment : assignment.intersection(held.union(self.failures.partitionsBlockedByWrites))
        let toPause = wanted.subtracting(control.paused)
        let toResume = control.paused.subtracting(wanted)
        guard !toPause.isEmpty || !toResume.isEmpty else { return }
        do {
            try control.pause(toPause)
            try control.resume(toResume)
            self.logger.debug("Fetching paused or resumed", metadata: ["paused": "\(toPause.count)", "resumed": "\(toResume.count)"])
        } catch {
            self.logger.error("Cannot pause or resume fetching", metadata: ["error": "\(error)"])
        }
    }

    /// ``reconcilePauses(_:)`` on the poll thread, from elsewhere.
    private func reconcilePausesSoon() {
        guard let consumer = self.state.withLock({ $0.consumer }) else { return }
        Task {
            try? await consumer.perform { self.reconcilePauses($0) }
        }
    }

    // MARK: - Processing (worker pool)

    /// Runs a lane's records of one batch, one after another, reporting completions in groups. `revocations` is
    /// the revocation count when they were dispatched: while it has not moved, their partitions are still theirs.
    ///
    /// Under idempotency keys, the run's keys are claimed in one batch of the store before the first record runs,
    /// and each key's completion is written while the lane moves on (completions of many records then share a
    /// batch); a record is reported finished only once its completion is written, and a record whose ordering
    /// key has a completion pending waits for it.
    private func run(_ run: LaneRun, lane: Int, dispatchedAfter revocations: Int) async {
        let crashes = self.crashes.snapshot(handler: self.settings.name)
        // The topic run (see ``LaneRun/topics``) the lane's journal slot names (another handler's run may have
        // used the lane before this run).
        var journalTopicRun = -1
        let progress = LaneRunProgress(run)
        let key = ObjectIdentifier(progress)
        self.runningProgress.withLock { $0[key] = progress }
        // Under idempotency keys every record's key is read up front, so its Record is made once, here.
        let records = self.call.idempotency != nil && run.count > 1 ? (0..<run.count).map { Record(run[$0]) } : nil
        var early = await self.claimAhead(records)
        var pending = PendingCompletions()
        let completes = self.call.idempotency != nil
        var topicRun = 0
        for position in 0..<run.count {
            let ticket = run.tickets[position]
            let live = self.revocations.load(ordering: .acquiring) == revocations || self.mayStart(ticket)
            var handled = false
            if live {
                // A record of a retry topic continues its attempt count.
                let attempt = self.retryTopicNames.isEmpty || !self.retryTopicNames.contains(run[position].topic)
                    ? 1 : (RetryTopics.stage(of: run[position])?.attempts ?? 0) + 1
                // A record waits for the pending completions when one of them is of its ordering key (it runs
                // after its key's earlier record is settled), or when it has no claim made ahead: it may repeat
                // an idempotency key of the run, whose completion it must see.
                let ordering = completes ? self.orderingHash(of: run[position]) : nil
                if !pending.isEmpty, early[position] == nil || ordering.map(pending.keys.contains) == true {
                    await self.finish(&pending, progress: progress)
                }
                if self.parkedKeys.load(ordering: .relaxed) > 0,
                    self.queueBehindParked(run[position], ticket: ticket, attempt: attempt)
                {
                    // It claims its key when its turn comes (a claim made ahead is this process's already).
                    early[position] = nil
                    progress.markHandedOff(position)
                    pending.settle(through: position, progress)
                    continue
                }
                let record = records?[position] ?? Record(run[position])
                if !crashes.isEmpty, let count = self.crashCount(of: run[position], in: crashes), count >= self.configuration.crashMax {
                    self.report(progress)
                    handled = await self.quarantine(run[position], record: record, ticket: ticket, crashes: count)
                } else {
                    while !run.positions(ofTopicRun: topicRun).contains(position) {
                        topicRun += 1
                    }
                    if topicRun != journalTopicRun {
                        self.journal.prepare(lane: lane, handler: self.settings.name, topic: run.topics[topicRun].topic)
                        journalTopicRun = topicRun
                    }
                    self.journal.start(lane: lane, partition: record.partition, offset: record.offset)
                    if completes {
                        // Records may start before the ones ahead of them finish (their completions pending).
                        progress.begin(position)
                    }
                    do {
                        let completion = try await self.call.start(
                            record, attempt: attempt, early: early.isEmpty ? nil : early.removeValue(forKey: position)
                        )
                        self.journal.finish(lane: lane)
                        if let completion {
                            pending.add(
                                .init(position: position, record: run[position], ticket: ticket, attempt: attempt, completion: completion),
                                key: ordering
                            )
                            if pending.count >= Self.reportGroup {
                                await self.finish(&pending, progress: progress)
                            }
                            continue
                        }
                        handled = true
                    } catch {
                        // The record waits for its retries in a task of its own; the lane moves on, and later
                        // records of its key queue behind it.
                        self.handOff(run[position], ticket: ticket, attempt: attempt, error: error)
                        self.journal.finish(lane: lane)
                        progress.markHandedOff(position)
                        pending.settle(through: position, progress)
                        continue
                    }
                }
            }
            if !handled {
                progress.markUnhandled(position)
            }
            pending.settle(through: position, progress)
            if (position + 1) % Self.reportGroup == 0 {
                self.report(progress)
            }
        }
        await self.finish(&pending, progress: progress)
        if !early.isEmpty {
            // Claimed ahead for records that did not run: their partitions went away.
            await self.call.idempotency?.release(early.values)
        }
        self.runningProgress.withLock { $0[key] = nil }
        self.report(progress)
    }

    /// Claims the keys of a run's records in one batch of the store (when the handler has idempotency keys).
    private func claimAhead(_ records: [Record]?) async -> [Int: IdempotentCall.EarlyClaim] {
        guard let idempotency = self.call.idempotency, let records else { return [:] }
        return await idempotency.claimAhead(records.enumerated().map { (position: $0.offset, record: $0.element) }, handler: self.handler)
    }

    /// Writes the pending completions in one batch, hands the records whose completion failed to their retries,
    /// and reports what the lane is done with.
    private func finish(_ pending: inout PendingCompletions, progress: LaneRunProgress) async {
        guard !pending.isEmpty, let idempotency = self.call.idempotency else { return }
        let results = await idempotency.complete(pending.entries.map(\.completion))
        for (entry, result) in zip(pending.entries, results) {
            if case .failure(let error) = result {
                self.handOff(entry.record, ticket: entry.ticket, attempt: entry.attempt, error: error)
                progress.markHandedOff(entry.position)
            }
        }
        if let through = pending.settledThrough {
            progress.finish(through: through)
        }
        pending = PendingCompletions()
    }

    /// Finished records reported under one lock.
    private static let reportGroup = 256

    /// How often the collector reports the finished records of runs still in progress.
    private static let collectInterval = Duration.milliseconds(10)

    /// Reports the finished records of runs still in progress (their workers may be in a long handler call).
    private func collectCompletions() {
        let runs = self.runningProgress.withLock { Array($0.values) }
        for progress in runs {
            self.report(progress)
        }
    }

    private func crashCount(of record: KafkaRecord, in crashes: [CrashJournal.Entry: Int]) -> Int? {
        crashes[CrashJournal.Entry(handler: self.settings.name, topic: record.topic, partition: record.partition, offset: record.offset)]
    }

    /// Dead-letters a record that kept crashing processes; `true` once it is in the dead-letter topic.
    private func quarantine(
        _ kafkaRecord: KafkaRecord, record: Record, ticket: OffsetTracker.Ticket, crashes: Int
    ) async -> Bool {
        let outcome = await self.failures.quarantine(kafkaRecord, record: record, crashes: crashes) { self.mayStart(ticket) }
        guard case .deadLettered = outcome else { return false }
        self.state.withLock { $0.deadLettered += 1 }
        return true
    }

    /// Retries, dead-letters or skips a record whose first attempt threw; `true` if the record is done with (its
    /// offset may be committed), `false` if its partition went away first.
    private func recover(
        _ kafkaRecord: KafkaRecord, record: Record, ticket: OffsetTracker.Ticket, attempt: Int, after error: any Error
    ) async -> Bool {
        let (outcome, failures) = await self.failures.recover(kafkaRecord, record: record, after: error, attempt: attempt) {
            self.mayStart(ticket)
        }
        self.state.withLock { state in
            state.failedAttempts += failures
            switch outcome {
            case .handled: break
            case .deadLettered: state.deadLettered += 1
            case .sentToRetryTopic: state.sentToRetryTopics += 1
            case .skipped: state.skipped += 1
            case .abandoned: break
            }
        }
        switch outcome {
        case .handled, .deadLettered, .skipped, .sentToRetryTopic: return true
        case .abandoned: return false
        }
    }

    private func mayStart(_ ticket: OffsetTracker.Ticket) -> Bool {
        self.state.withLock { $0.tracker.mayStart(ticket) }
    }

    /// Stops records of `partitions` (all, if `nil`) from starting, except those needed to complete the prefix
    /// of work already started (see ``OffsetTracker/beginRevoke(_:started:)``), and tells the workers to check.
    private func stopStarting(_ partitions: [TopicPartition]?) {
        self.runningProgress.withLock { running in
            var started: [OffsetTracker.Epoch: Int] = [:]
            for progress in running.values {
                for ticket in progress.startedTickets {
                    started[ticket.epoch] = max(started[ticket.epoch] ?? -1, ticket.sequence)
                }
            }
            self.state.withLock { state in
                state.tracker.beginRevoke(partitions ?? state.tracker.assigned, started: started)
            }
        }
        self.revocations.add(1, ordering: .releasing)
    }

    /// Reports a run's newly finished records to the tracker, the counters and the budget.
    private func report(_ progress: LaneRunProgress) {
        guard let report = progress.takeReport(), report.count > 0 else { return }
        self.settle(finished: report.finished, skipped: report.skipped, bytes: report.bytes)
        for (topic, count) in report.attemptedByTopic {
            self.metrics.increment(.attempts, topic: topic, by: count)
        }
    }

    /// Tells the tracker, the counters and the budget that records left the runtime.
    private func settle(finished: [OffsetTracker.Ticket], skipped: [OffsetTracker.Ticket], bytes: Int) {
        let count = finished.count + skipped.count
        let (signal, idle): (DispatchSemaphore?, [CheckedContinuation<Void, Never>]) = self.state.withLock { state in
            state.tracker.finish(finished)
            state.tracker.skip(skipped)
            state.finished += finished.count
            state.inFlight -= count
            guard state.inFlight == 0 else { return (state.drainSignal, []) }
            defer { state.idleWaiters.removeAll() }
            return (state.drainSignal, state.idleWaiters)
        }
        signal?.signal()
        idle.forEach { $0.resume() }
        self.budget.remove(records: count, bytes: bytes)
        self.failures.noteFinished(finished.count)
    }

    // MARK: - Keys waiting for a retry

    /// What orders a record: records with equal ordering keys run one after another.
    enum OrderingKey: Hashable, Sendable {
        case key(topic: String, bytes: [UInt8])
        case partition(TopicPartition)
    }

    /// A record queued behind its key's record that waits for a retry.
    struct Parked: Sendable {
        let record: KafkaRecord
        let ticket: OffsetTracker.Ticket
        let attempt: Int
    }

    /// The ordering key of a record under the handler's ordering (`nil` under ``Ordering/none``).
    private func orderingKey(of record: KafkaRecord) -> OrderingKey? {
        switch self.settings.ordering {
        case .none: nil
        case .partition: .partition(record.topicPartition)
        case .key: record.key.map { .key(topic: record.topic, bytes: Array($0)) } ?? .partition(record.topicPartition)
        }
    }

    /// A hash of the record's ordering key (see ``orderingKey(of:)``; `nil` under ``Ordering/none``), made from its
    /// bytes in place: enough for a lane run's pending completions, which only tell whether a record's key may be
    /// among theirs (two keys of one hash make a record wait for completions it need not wait for, never the
    /// other way round).
    private func orderingHash(of record: KafkaRecord) -> Int? {
        var hasher = Hasher()
        switch self.settings.ordering {
        case .none:
            return nil
        case .partition:
            hasher.combine(record.partition)
        case .key:
            let keyed = record.withUnsafeKeyBytes { key in
                key.map { hasher.combine(bytes: $0) } != nil
            }
            hasher.combine(keyed)
            if !keyed {
                hasher.combine(record.partition)
            }
        }
        hasher.combine(record.topic)
        return hasher.finalize()
    }

    /// Queues `record` behind its key's waiting record, if its key is parked; `true` if it was queued.
    private func queueBehindParked(_ record: KafkaRecord, ticket: OffsetTracker.Ticket, attempt: Int) -> Bool {
        guard let key = self.orderingKey(of: record) else { return false }
        return self.state.withLock { state in
            guard state.parked[key] != nil else { return false }
            state.parked[key]!.append(Parked(record: record, ticket: ticket, attempt: attempt))
            return true
        }
    }

    /// Hands a record whose first attempt failed to a task of its own: it waits for its retries there while the
    /// lane moves on, and the later records of its key queue behind it (see ``queueBehindParked``).
    private func handOff(_ record: KafkaRecord, ticket: OffsetTracker.Ticket, attempt: Int, error: any Error) {
        self.metrics.increment(.attempts, topic: record.topic)
        let key = self.orderingKey(of: record)
        if let key {
            self.state.withLock { $0.parked[key] = [] }
            self.parkedKeys.add(1, ordering: .relaxed)
        }
        self.pool.detached {
            var next: (record: KafkaRecord, ticket: OffsetTracker.Ticket, attempt: Int, error: (any Error)?)? =
                (record, ticket, attempt, error)
            while let (record, ticket, attempt, error) = next {
                let handled = await self.runParked(record, ticket: ticket, attempt: attempt, failedWith: error)
                self.settle(
                    finished: handled ? [ticket] : [], skipped: handled ? [] : [ticket], bytes: record.byteCount
                )
                next = key.flatMap { key in
                    self.state.withLock { state in
                        guard let first = state.parked[key]?.first else {
                            state.parked[key] = nil
                            self.parkedKeys.subtract(1, ordering: .relaxed)
                            return nil
                        }
                        state.parked[key]!.removeFirst()
                        return (first.record, first.ticket, first.attempt, nil)
                    }
                }
            }
        }
    }

    /// Runs a handed-off record: its retries after `error`, or (for one queued behind it) its first attempt and
    /// retries. `true` if handled, dead-lettered, skipped or sent to a retry topic.
    private func runParked(
        _ kafkaRecord: KafkaRecord, ticket: OffsetTracker.Ticket, attempt: Int, failedWith error: (any Error)?
    ) async -> Bool {
        let record = Record(kafkaRecord)
        if let error {
            return await self.recover(kafkaRecord, record: record, ticket: ticket, attempt: attempt, after: error)
        }
        guard self.mayStart(ticket) else { return false }
        self.metrics.increment(.attempts, topic: record.topic)
        do {
            try await self.call(record, attempt: attempt)
            return true
        } catch {
            return await self.recover(kafkaRecord, record: record, ticket: ticket, attempt: attempt, after: error)
        }
    }

    // MARK: - Rebalance (poll thread)

    func consumer(_ control: KafkaConsumerControl, didAssign partitions: [TopicPartition]) {
        self.state.withLock { state in
            for partition in partitions {
                state.tracker.assign(partition)
            }
        }
        self.logger.info("Partitions assigned", metadata: ["partitions": "\(partitions.map(\.description))"])
        self.reconcilePauses(control)
    }

    func consumer(_ control: KafkaConsumerControl, willRevoke partitions: [TopicPartition]) {
        self.stopStarting(partitions)
        self.drain(partitions)
        let offsets = self.state.withLock { $0.tracker.committable(partitions) }
        do {
            try control.store(offsets)
            try control.commit()
        } catch {
            self.logger.error("Commit before release failed", metadata: ["error": "\(error)"])
        }
        self.release(partitions, reason: "revoked")
        self.logger.info("Partitions revoked", metadata: ["partitions": "\(partitions.map(\.description))"])
    }

    func consumer(_ control: KafkaConsumerControl, didLose partitions: [TopicPartition]) {
        self.release(partitions, reason: "lost")
        self.logger.warning("Partitions lost", metadata: ["partitions": "\(partitions.map(\.description))"])
    }

    func consumerHoldDidExpire(_ control: KafkaConsumerControl) {
        self.reconcilePauses(control)
    }

    func consumer(_ control: KafkaConsumerControl, didFail error: KafkaError) {
        self.logger.warning("Consumer error", metadata: ["error": "\(error)"])
    }

    /// Blocks the poll thread until the partitions' in-flight records finished, or the drain timeout passed
    /// (no wait once a shutdown timed out).
    private func drain(_ partitions: [TopicPartition]) {
        let semaphore = DispatchSemaphore(value: 0)
        let timeout = self.state.withLock { $0.isShuttingDown } ? Duration.zero : self.configuration.drainTimeout
        let deadline = DispatchTime.now() + .milliseconds(timeout.wholeMilliseconds)
        while true {
            let remaining = self.state.withLock { state in
                let remaining = partitions.reduce(0) { $0 + state.tracker.inFlight($1) }
                state.drainSignal = remaining > 0 ? semaphore : nil
                return remaining
            }
            guard remaining > 0, semaphore.wait(timeout: deadline) == .success else { break }
        }
        self.state.withLock { $0.drainSignal = nil }
    }

    /// Stops tracking partitions and logs the records abandoned in them.
    private func release(_ partitions: [TopicPartition], reason: String) {
        self.revocations.add(1, ordering: .releasing)
        let abandoned: [TopicPartitionOffset] = self.state.withLock { state in
            for partition in partitions {
                state.heldUntilDue[partition] = nil
            }
            let abandoned = partitions.flatMap { partition in
                state.tracker.revoke(partition).map { TopicPartitionOffset(partition, offset: $0) }
            }
            state.abandoned += abandoned
            return abandoned
        }
        for record in abandoned {
            self.logger.warning(
                "Record abandoned; the next owner will redeliver it",
                metadata: ["topic": "\(record.topicPartition.topic)", "partition": "\(record.topicPartition.partition)",
                           "offset": "\(record.offset)", "reason": "\(reason)"]
            )
        }
    }
}
