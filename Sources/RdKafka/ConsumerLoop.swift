internal import CRdKafka
import Dispatch
import Logging
import Synchronization

/// The poll thread of a ``KafkaConsumer``: owns the consumer handle, reads records in batches, applies
/// rebalances, and runs the operations other threads send it.
///
/// `@unchecked Sendable`: the loop is handed to its poll thread once, at start. From then on its `var`s are read
/// and written only on that thread: by ``run()``, by commands it runs, and by the rebalance and commit callbacks,
/// which librdkafka calls from inside `rd_kafka_consumer_poll` and `rd_kafka_consumer_close` on the same thread.
/// What other threads touch (``mailbox``) is behind a `Mutex`.
final class ConsumerLoop: @unchecked Sendable {
    /// A unit of work sent to the poll thread.
    typealias Command = @Sendable (ConsumerLoop) -> Void

    /// What other threads share with the poll thread.
    struct Mailbox {
        var commands: [Command] = []
        /// The consumer queue, kept only to wake the poll thread; `nil` once the loop stopped taking commands.
        var wakeQueue: OpaquePointer?
        /// Whether the poll thread waits on ``ConsumerLoop/holdWake`` (a hold) rather than in librdkafka.
        var isHolding = false
    }

    let client: KafkaClient
    let delegate: any KafkaConsumerDelegate
    let logger: Logger
    let mailbox: Mutex<Mailbox>
    /// Signalled when a command arrives while the poll thread holds.
    private let holdWake = DispatchSemaphore(value: 0)
    private let batchSize: Int
    private let readsHeaders: Bool

    // MARK: Poll-thread state

    private(set) var assignment: Set<TopicPartition> = []
    private(set) var paused: Set<TopicPartition> = []
    /// Messages read but not yet handed to the delegate. Appended to once per message on the poll thread, the only
    /// thread that touches it (see above), so the dynamic exclusivity check per access is switched off.
    @exclusivity(unchecked) private var pending: [UnsafeMutablePointer<rd_kafka_message_t>] = []
    /// Topic names by librdkafka topic handle, so that a name is made once, not per record.
    private var topicNames: [OpaquePointer: String] = [:]
    private var isClosing = false
    /// When the last full batch (of records or of a mebibyte) was read: the consumer was behind the fetchers then.
    private var lastFullBatch: ContinuousClock.Instant?
    /// Where the next fetcher wake-up starts in the assignment.
    private var wakeCursor = 0
    /// Until when the loop reads no records (see ``hold(until:)``).
    private var holdDeadline: ContinuousClock.Instant?
    private var isClosed = false

    init(client: KafkaClient, delegate: any KafkaConsumerDelegate, logger: Logger) {
        self.client = client
        self.delegate = delegate
        self.logger = logger
        self.batchSize = client.configuration.pollBatchSize
        self.readsHeaders = client.configuration.readsHeaders
        // The queue reference is destroyed in `stopTakingCommands()`, before the consumer closes.
        self.mailbox = Mutex(Mailbox(wakeQueue: rd_kafka_queue_get_consumer(client.pointer)))
        self.pending.reserveCapacity(self.batchSize)
    }

    // MARK: - Commands

    /// Sends `command` to the poll thread. Returns `false` if the loop has stopped taking commands.
    func send(_ command: @escaping Command) -> Bool {
        self.mailbox.withLock { mailbox in
            guard let queue = mailbox.wakeQueue else { return false }
            mailbox.commands.append(command)
            rd_kafka_queue_yield(queue)
            if mailbox.isHolding {
                mailbox.isHolding = false
                self.holdWake.signal()
            }
            return true
        }
    }

    private func runCommands() {
        let commands = self.mailbox.withLock { mailbox in
            defer { mailbox.commands.removeAll() }
            return mailbox.commands
        }
        for command in commands {
            command(self)
        }
    }

    // MARK: - Loop

    /// Polls until ``close()`` ran. Called once, on the poll thread.
    func run() {
        while !self.isClosed {
            self.runCommands()
            guard !self.isClosed else { break }
            if self.waitWhileHeld() {
                continue
            }
            self.pollBatch()
        }
    }

    /// Reads no records until `deadline` (or until ``endHold()``), while commands still run: the records stay in
    /// librdkafka's prefetch queue, whose bound stops the fetchers. Unlike pausing partitions, which makes
    /// librdkafka 2.0.2 drop what it prefetched for them and fetch it again after the resume (a stall of up to a
    /// second), a hold costs nothing when it ends; but rebalances wait for it, so keep it short.
    func hold(until deadline: ContinuousClock.Instant) {
        self.holdDeadline = deadline
    }

    /// Ends a hold: records are read again.
    func endHold() {
        self.holdDeadline = nil
    }

    /// Waits while a hold lasts, waking for commands; tells the delegate when a hold ran out. Returns whether the
    /// loop held (it then runs its commands before reading records).
    private func waitWhileHeld() -> Bool {
        guard let deadline = self.holdDeadline else { return false }
        let now = ContinuousClock.now
        guard now < deadline else {
            self.holdDeadline = nil
            self.delegate.consumerHoldDidExpire(KafkaConsumerControl(loop: self))
            return true
        }
        let sleeps = self.mailbox.withLock { mailbox in
            guard mailbox.commands.isEmpty else { return false }
            mailbox.isHolding = true
            return true
        }
        guard sleeps else { return true }
        // Rounded up, so that the loop does not spin through the last fraction of a millisecond.
        _ = self.holdWake.wait(timeout: .now() + .milliseconds(Int((deadline - now).milliseconds) + 1))
        self.mailbox.withLock { $0.isHolding = false }
        return true
    }

    private func pollBatch() {
        var first = rd_kafka_consumer_poll(self.client.pointer, 0)
        if first == nil {
            if let lastFull = self.lastFullBatch, ContinuousClock.now - lastFull < .milliseconds(100) {
                // Behind a moment ago, dry now: the fetchers may have stopped at the prefetch queue's bound.
                self.lastFullBatch = nil
                self.wakeFetchers(self.nextFetchersToWake(), waiting: false)
            }
            first = rd_kafka_consumer_poll(self.client.pointer, 100)
        }
        guard let first else { return }
        // Read into the stored array, not a local one: a rebalance served by one of these polls drops the messages
        // of revoked partitions from it (see ``rebalance(_:_:_:)``).
        self.pending.append(first)
        while self.pending.count < self.batchSize, let next = rd_kafka_consumer_poll(self.client.pointer, 0) {
            self.pending.append(next)
        }
        if self.pending.count == self.batchSize || self.pending.reduce(0, { $0 + $1.pointee.len }) >= 1 << 20 {
            self.lastFullBatch = ContinuousClock.now
        }
        // Taken out (keeping the stored array's capacity for the next batch) and handed over.
        var messages: [UnsafeMutablePointer<rd_kafka_message_t>] = []
        swap(&messages, &self.pending)
        defer {
            messages.removeAll(keepingCapacity: true)
            swap(&messages, &self.pending)
        }
        let records = self.takeRecords(messages)
        if !records.isEmpty {
            self.delegate.consumer(KafkaConsumerControl(loop: self), didReceive: records)
        }
    }

    /// Copies `messages` into one batch, reports the errors among them, and destroys them.
    ///
    /// This is the per-record hot path: one allocation for all keys and values of the batch, one for the
    /// records, and no per-record allocation unless a record has headers.
    private func takeRecords(_ messages: [UnsafeMutablePointer<rd_kafka_message_t>]) -> [KafkaRecord] {
        defer {
            for message in messages {
                rd_kafka_message_destroy(message)
            }
        }
        var capacity = 0
        for message in messages where message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            capacity += message.pointee.len + message.pointee.key_len
        }
        var slots: [KafkaBatchStorage.RecordSlot] = []
        slots.reserveCapacity(messages.count)
        var headers: [KafkaHeader] = []
        // Batches are mostly of one topic: its name is looked up once per change, not once per record.
        var topics: [String] = []
        var topicHandles: [OpaquePointer?] = []
        var topic = -1
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            let base = UnsafeMutableRawBufferPointer(buffer)
            var end = 0
            func copy(_ pointer: UnsafeMutableRawPointer?, _ count: Int) -> Range<Int>? {
                guard let pointer else { return nil }
                base.baseAddress!.advanced(by: end).copyMemory(from: pointer, byteCount: count)
                defer { end += count }
                return end..<end + count
            }
            for message in messages where message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                let key = copy(message.pointee.key, message.pointee.key_len)
                let value = copy(message.pointee.payload, message.pointee.len)
                let firstHeader = headers.count
                if self.readsHeaders {
                    Self.appendHeaders(of: message, to: &headers)
                }
                if topic < 0 || topicHandles[topic] != message.pointee.rkt {
                    if let known = topicHandles.firstIndex(of: message.pointee.rkt) {
                        topic = known
                    } else {
                        topicHandles.append(message.pointee.rkt)
                        topics.append(self.topicName(message.pointee.rkt))
                        topic = topics.count - 1
                    }
                }
                var kind = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                let milliseconds = rd_kafka_message_timestamp(message, &kind)
                let timestamp: KafkaTimestamp? =
                    switch kind {
                    case RD_KAFKA_TIMESTAMP_CREATE_TIME:
                        KafkaTimestamp(kind: .createTime, millisecondsSinceEpoch: milliseconds)
                    case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME:
                        KafkaTimestamp(kind: .logAppendTime, millisecondsSinceEpoch: milliseconds)
                    default: nil
                    }
                slots.append(.init(key: key, value: value, headers: firstHeader..<headers.count, topic: topic, timestamp: timestamp))
            }
            initialized = end
        }
        let storage = KafkaBatchStorage(bytes: bytes, headers: headers, topics: topics, slots: slots)
        var records: [KafkaRecord] = []
        records.reserveCapacity(slots.count)
        var index = 0
        for message in messages {
            guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                self.report(message)
                continue
            }
            records.append(KafkaRecord(
                partition: message.pointee.partition, offset: message.pointee.offset, storage: storage, index: index,
                topicIndex: slots[index].topic
            ))
            index += 1
        }
        return records
    }

    private static func appendHeaders(
        of message: UnsafeMutablePointer<rd_kafka_message_t>,
        to headers: inout [KafkaHeader]
    ) {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append(KafkaHeader(
                name: name.map { String(cString: $0) } ?? "",
                value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            ))
            index += 1
        }
    }

    private func topicName(_ topic: OpaquePointer?) -> String {
        guard let topic else { return "" }
        if let name = self.topicNames[topic] {
            return name
        }
        let name = String(cString: rd_kafka_topic_name(topic))
        self.topicNames[topic] = name
        return name
    }

    /// Reports a consumer error message (as opposed to a record) to the delegate.
    private func report(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let payload = message.pointee
        var context = "consumer"
        if let topic = payload.rkt {
            context += " on \(self.topicName(topic))[\(payload.partition)]"
        }
        let reason = rd_kafka_message_errstr(message).map { String(cString: $0) }
        let error = KafkaError.translate(payload.err, context: context, reason: reason)
        self.logger.warning("Consumer error", metadata: ["error": "\(error)"])
        self.delegate.consumer(KafkaConsumerControl(loop: self), didFail: error)
    }

    // MARK: - Operations (poll thread)

    func pause(_ partitions: some Collection<TopicPartition>) throws {
        try self.requireAssigned(partitions, operation: "pause")
        let toPause = partitions.filter { !self.paused.contains($0) }
        guard !toPause.isEmpty else { return }
        let list = PartitionList(toPause)
        let result = rd_kafka_pause_partitions(self.client.pointer, list.pointer)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.translate(result, context: "pause \(toPause)")
        }
        self.paused.formUnion(toPause)
    }

    func seek(_ offsets: some Collection<TopicPartitionOffset>) throws {
        try self.requireAssigned(offsets.map(\.topicPartition), operation: "seek")
        guard !offsets.isEmpty else { return }
        let list = PartitionList(offsets)
        // A zero timeout: the seek is applied by librdkafka's threads; the poll thread does not wait for it.
        if let error = rd_kafka_seek_partitions(self.client.pointer, list.pointer, 0) {
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            throw KafkaError.translate(code, context: "seek \(Array(offsets))")
        }
    }

    func resume(_ partitions: some Collection<TopicPartition>) throws {
        let toResume = partitions.filter { self.paused.contains($0) }
        guard !toResume.isEmpty else { return }
        let list = PartitionList(toResume)
        let result = rd_kafka_resume_partitions(self.client.pointer, list.pointer)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.translate(result, context: "resume \(toResume)")
        }
        self.paused.subtract(toResume)
        self.wakeFetchers(toResume, waiting: true)
    }

    /// Wakes the broker threads that fetch `partitions`.
    ///
    /// librdkafka 2.0.2 re-decides whether a partition may fetch only when its broker thread wakes up: on a
    /// request, a response, or its periodic wake-up, up to a second later. Nothing wakes it when a resume is
    /// applied, nor when the consumer drains a prefetch queue that had reached `queued.max.messages.kbytes`
    /// (the queue bound is shared by every partition of the consumer, so all of them stop fetching at once). A
    /// request to the partition's leader wakes its broker thread: a watermark query.
    ///
    /// - Parameter waiting: After a resume, each query waits for its answer (up to 100 ms each, 500 ms in all):
    ///   librdkafka applies the resume on its main thread, and a broker thread woken before that would see the
    ///   partition still paused and sleep again. For a dry queue nothing needs to settle first: the queries are
    ///   sent without waiting, and librdkafka discards their answers.
    private func wakeFetchers(_ partitions: some Sequence<TopicPartition>, waiting: Bool) {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(500)
        var low: Int64 = 0
        var high: Int64 = 0
        for partition in partitions where clock.now < deadline {
            _ = rd_kafka_query_watermark_offsets(
                self.client.pointer, partition.topic, partition.partition, &low, &high, waiting ? 100 : 0
            )
        }
    }

    /// A few assigned partitions, rotating over the assignment, so that every leader's broker thread is reached
    /// within a few wake-ups without a request per partition each time.
    private func nextFetchersToWake() -> [TopicPartition] {
        let assigned = self.assignment.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        guard !assigned.isEmpty else { return [] }
        let count = min(4, assigned.count)
        defer { self.wakeCursor = (self.wakeCursor + count) % assigned.count }
        return (0..<count).map { assigned[(self.wakeCursor + $0) % assigned.count] }
    }

    func store(_ offsets: some Collection<TopicPartitionOffset>) throws {
        try self.requireAssigned(offsets.map(\.topicPartition), operation: "store offsets")
        guard !offsets.isEmpty else { return }
        let list = PartitionList(offsets)
        let result = rd_kafka_offsets_store(self.client.pointer, list.pointer)
        let refused = list.entries.filter { $0.1 != RD_KAFKA_RESP_ERR_NO_ERROR }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, refused.isEmpty else {
            let detail = refused.map { "\($0.0): \(String(cString: rd_kafka_err2name($0.1)))" }
            throw KafkaError.translate(
                refused.first?.1 ?? result,
                context: "store offsets",
                reason: "librdkafka refused \(detail.isEmpty ? "the offsets" : detail.joined(separator: ", "))"
            )
        }
    }

    func commit(asynchronously: Bool) throws {
        let result = rd_kafka_commit(self.client.pointer, nil, asynchronously ? 1 : 0)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR || result == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            throw KafkaError.translate(result, context: "commit")
        }
    }

    func subscribe(_ topics: [String]) throws {
        try self.client.waitForBrokers()
        let list = PartitionList(topics.map { TopicPartition($0, conveyor_partition_unassigned()) })
        let result = rd_kafka_subscribe(self.client.pointer, list.pointer)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.translate(result, context: "subscribe to \(topics)")
        }
    }

    private func requireAssigned(_ partitions: some Collection<TopicPartition>, operation: String) throws {
        let foreign = partitions.filter { !self.assignment.contains($0) }
        guard foreign.isEmpty else {
            throw KafkaError(
                .partitionNotAssigned,
                "\(operation): \(foreign.map(\.description).joined(separator: ", ")) not assigned to this consumer"
            )
        }
    }

    /// Leaves the group (revoking the assignment through the delegate first) and stops the loop.
    func close() -> Result<Void, KafkaError> {
        guard !self.isClosing else { return .success(()) }
        self.isClosing = true
        self.stopTakingCommands()
        let result = rd_kafka_consumer_close(self.client.pointer)
        self.isClosed = true
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            return .failure(KafkaError.translate(result, context: "close consumer"))
        }
        return .success(())
    }

    /// Refuses further commands, fails the ones still queued, and releases the wake-up queue.
    private func stopTakingCommands() {
        let (queue, _) = self.mailbox.withLock { mailbox in
            defer { mailbox.wakeQueue = nil }
            return (mailbox.wakeQueue, ())
        }
        self.runCommands()
        if let queue {
            rd_kafka_queue_destroy(queue)
        }
    }
}

// MARK: - Rebalance

extension ConsumerLoop: ClientEventHandler {
    func rebalance(
        _ client: OpaquePointer,
        _ error: rd_kafka_resp_err_t,
        _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    ) {
        let partitions = PartitionList.partitions(in: list)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE"
        let control = KafkaConsumerControl(loop: self)
        switch error {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let failure: String?
            if cooperative {
                failure = rd_kafka_incremental_assign(client, list).map {
                    KafkaError.consume($0, context: "assign \(partitions)").message
                }
            } else {
                let result = rd_kafka_assign(client, list)
                failure = result == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : String(cString: rd_kafka_err2str(result))
            }
            if let failure {
                self.logger.error("Assignment failed", metadata: ["error": "\(failure)"])
                return
            }
            self.assignment.formUnion(partitions)
            self.logger.debug("Partitions assigned", metadata: ["partitions": "\(partitions)"])
            self.delegate.consumer(control, didAssign: partitions)
        default:
            let revoked = Set(partitions)
            // Records read but not handed over are dropped: their offsets were never stored, so the next owner
            // reads them again.
            self.pending.removeAll { message in
                let revokedMessage = revoked.contains(
                    TopicPartition(self.topicName(message.pointee.rkt), message.pointee.partition)
                )
                if revokedMessage {
                    rd_kafka_message_destroy(message)
                }
                return revokedMessage
            }
            if rd_kafka_assignment_lost(client) != 0 {
                self.logger.warning("Partitions lost", metadata: ["partitions": "\(partitions)"])
                self.delegate.consumer(control, didLose: partitions)
            } else {
                self.logger.debug("Partitions revoked", metadata: ["partitions": "\(partitions)"])
                self.delegate.consumer(control, willRevoke: partitions)
            }
            self.assignment.subtract(revoked)
            self.paused.subtract(revoked)
            if cooperative {
                if let failure = rd_kafka_incremental_unassign(client, list) {
                    let error = KafkaError.consume(failure, context: "unassign \(partitions)")
                    self.logger.error("Unassignment failed", metadata: ["error": "\(error)"])
                }
            } else {
                rd_kafka_assign(client, nil)
            }
        }
    }

    func committed(_ error: rd_kafka_resp_err_t, _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        guard error != RD_KAFKA_RESP_ERR_NO_ERROR, error != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
        let failure = KafkaError.translate(error, context: "commit of \(PartitionList.partitions(in: offsets))")
        self.logger.warning("Commit failed", metadata: ["error": "\(failure)"])
        self.delegate.consumer(KafkaConsumerControl(loop: self), didFail: failure)
    }

    func delivered() {}
}
