import Dispatch
import Logging
import RdKafka
import ServiceLifecycle
import Synchronization

/// Runs one handler in its consumer group: hands records to the worker pool by lane, tracks their offsets,
/// commits only what is finished, applies the process budget, and drains partitions before releasing them.
final class HandlerRuntime: KafkaConsumerDelegate {
    private struct State {
        var tracker = OffsetTracker()
        /// Partitions this runtime paused for the budget (and must resume), as opposed to paused by others.
        var pausedForBudget: Set<TopicPartition> = []
        /// Records dispatched and not finished, over all partitions (including abandoned ones still running).
        var inFlight = 0
        /// Signalled on every completion while the poll thread waits for revoked partitions to drain.
        var drainSignal: DispatchSemaphore?
        /// Waiting for `inFlight` to reach zero (shutdown).
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var nextSingleLane: UInt64 = 0
        var isShuttingDown = false
        /// Records abandoned at a drain or shutdown deadline.
        var abandoned: [TopicPartitionOffset] = []
        var consumer: KafkaConsumer?
        var handled = 0
        var failedAttempts = 0
    }

    let handler: any Handler
    let settings: RuntimeConfiguration.HandlerSettings
    private let configuration: RuntimeConfiguration
    private let pool: WorkerPool
    private let budget: ProcessBudget
    private let producer: KafkaProducer
    private let logger: Logger
    private let state = Mutex(State())

    init(
        handler: any Handler,
        settings: RuntimeConfiguration.HandlerSettings,
        configuration: RuntimeConfiguration,
        pool: WorkerPool,
        budget: ProcessBudget,
        producer: KafkaProducer,
        logger: Logger
    ) {
        self.handler = handler
        self.settings = settings
        self.configuration = configuration
        self.pool = pool
        self.budget = budget
        self.producer = producer
        var logger = logger
        logger[metadataKey: "handler"] = "\(settings.name)"
        self.logger = logger
    }

    /// The topics this runtime subscribes to.
    var topics: [String] { self.settings.topics ?? self.handler.topics }

    /// Counters for summaries.
    var statistics: HandlerStatistics {
        self.state.withLock { state in
            HandlerStatistics(
                name: self.settings.name, group: self.settings.groupID, handled: state.handled,
                failedAttempts: state.failedAttempts, inFlight: state.inFlight
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
            configuration: try self.configuration.consumerConfiguration(for: self.settings),
            delegate: self,
            logger: self.logger
        )
        self.state.withLock { $0.consumer = consumer }
        defer { self.state.withLock { $0.consumer = nil } }
        self.budget.onResume { [weak self] in self?.resumeAfterBudget() }
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
        try? await consumer.perform { control in
            try control.pause(control.assignment.subtracting(control.paused))
        }
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
        var items: [(LaneKey, WorkerPool.Work)] = []
        items.reserveCapacity(records.count)
        var bytes = 0
        self.state.withLock { state in
            for record in records {
                guard let epoch = state.tracker.dispatch(record.topicPartition, offset: record.offset) else { continue }
                items.append((self.lane(for: record, in: &state), { await self.process(record, epoch: epoch) }))
                bytes += record.byteCount
            }
            state.inFlight += items.count
        }
        let mustPause = self.budget.add(records: items.count, bytes: bytes)
        self.pool.submit(items)
        if mustPause || self.budget.isPaused {
            self.pauseForBudget(control, control.assignment)
        }
    }

    private func lane(for record: KafkaRecord, in state: inout State) -> LaneKey {
        switch self.settings.ordering {
        case .key:
            guard let key = record.key else { return .partition(record.topicPartition) }
            return .key(topic: record.topic, key: key)
        case .partition:
            return .partition(record.topicPartition)
        case .none:
            state.nextSingleLane += 1
            return .single(state.nextSingleLane)
        }
    }

    private func pauseForBudget(_ control: KafkaConsumerControl, _ partitions: Set<TopicPartition>) {
        let toPause = partitions.subtracting(control.paused)
        guard !toPause.isEmpty else { return }
        do {
            try control.pause(toPause)
            self.state.withLock { $0.pausedForBudget.formUnion(toPause) }
            self.logger.debug("Fetching paused: in-flight budget reached", metadata: ["partitions": "\(toPause.count)"])
        } catch {
            self.logger.error("Cannot pause for the in-flight budget", metadata: ["error": "\(error)"])
        }
    }

    private func resumeAfterBudget() {
        guard let consumer = self.state.withLock({ $0.consumer }) else { return }
        Task {
            try? await consumer.perform { control in
                let paused = self.state.withLock { state in
                    defer { state.pausedForBudget.removeAll() }
                    return state.pausedForBudget
                }
                guard !self.budget.isPaused, !self.state.withLock({ $0.isShuttingDown }) else {
                    self.state.withLock { $0.pausedForBudget.formUnion(paused) }
                    return
                }
                try control.resume(paused.intersection(control.assignment))
            }
        }
    }

    // MARK: - Processing (worker pool)

    private func process(_ kafkaRecord: KafkaRecord, epoch: OffsetTracker.Epoch) async {
        let partition = kafkaRecord.topicPartition
        let record = Record(kafkaRecord)
        var attempt = 1
        var backoff = self.configuration.retryBackoff
        var handled = false
        while self.isCurrent(partition, epoch: epoch) {
            let context = HandlerContext(logger: self.logger, record: record, attempt: attempt, producer: self.producer)
            do {
                try await self.handler.handle(record, context: context)
                handled = true
                break
            } catch {
                self.state.withLock { $0.failedAttempts += 1 }
                context.logger.warning("Handler failed; retrying", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, self.configuration.maxRetryBackoff)
                attempt += 1
            }
        }
        self.complete(partition, offset: kafkaRecord.offset, epoch: epoch, bytes: kafkaRecord.byteCount, handled: handled)
    }

    private func isCurrent(_ partition: TopicPartition, epoch: OffsetTracker.Epoch) -> Bool {
        self.state.withLock { $0.tracker.epoch(of: partition) == epoch }
    }

    private func complete(
        _ partition: TopicPartition,
        offset: Int64,
        epoch: OffsetTracker.Epoch,
        bytes: Int,
        handled: Bool
    ) {
        let (signal, idle): (DispatchSemaphore?, [CheckedContinuation<Void, Never>]) = self.state.withLock { state in
            state.tracker.finish(partition, offset: offset, epoch: epoch)
            state.handled += handled ? 1 : 0
            state.inFlight -= 1
            guard state.inFlight == 0 else { return (state.drainSignal, []) }
            defer { state.idleWaiters.removeAll() }
            return (state.drainSignal, state.idleWaiters)
        }
        signal?.signal()
        idle.forEach { $0.resume() }
        self.budget.remove(records: 1, bytes: bytes)
    }

    // MARK: - Rebalance (poll thread)

    func consumer(_ control: KafkaConsumerControl, didAssign partitions: [TopicPartition]) {
        self.state.withLock { state in
            for partition in partitions {
                state.tracker.assign(partition)
            }
        }
        self.logger.info("Partitions assigned", metadata: ["partitions": "\(partitions.map(\.description))"])
        if self.budget.isPaused {
            self.pauseForBudget(control, Set(partitions))
        }
    }

    func consumer(_ control: KafkaConsumerControl, willRevoke partitions: [TopicPartition]) {
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
        let abandoned: [TopicPartitionOffset] = self.state.withLock { state in
            state.pausedForBudget.subtract(partitions)
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
