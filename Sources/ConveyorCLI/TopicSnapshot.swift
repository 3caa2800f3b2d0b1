import Foundation
import Logging
import RdKafka
import Synchronization

/// Every record a topic held when the snapshot started, read without joining a real group or committing.
enum TopicSnapshot {
    /// Reads `topic` from its low to its high watermarks (as they were at the start), sorted by partition and
    /// offset.
    static func read(
        _ topic: String, client: ClientOptions, timeout: Duration = .seconds(30), logger: Logger
    ) async throws -> [KafkaRecord] {
        let admin = try KafkaAdmin(configuration: try client.makeConfiguration(), logger: logger)
        var ends: [Int32: Int64] = [:]
        for partition in try await admin.partitions(of: topic) {
            let (low, high) = try await admin.watermarks(of: TopicPartition(topic, partition))
            if high > low {
                ends[partition] = high
            }
        }
        guard !ends.isEmpty else { return [] }
        var configuration = try client.makeConfiguration(groupID: "conveyor-snapshot-\(UUID().uuidString)")
        try configuration.set("auto.offset.reset", "earliest")
        try configuration.set("enable.auto.commit", "false")
        let reader = SnapshotReader(ends: ends)
        let consumer = try KafkaConsumer(configuration: configuration, delegate: reader, logger: logger)
        try await consumer.subscribe([topic])
        let deadline = Task {
            try await Task.sleep(for: timeout)
            logger.warning("Snapshot read timed out; showing what arrived", metadata: ["topic": "\(topic)"])
            reader.finishEarly()
        }
        let records = await reader.records()
        deadline.cancel()
        try await consumer.close()
        return records.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
    }
}

/// Collects records until every partition reached its end offset.
private final class SnapshotReader: KafkaConsumerDelegate {
    private struct State {
        var remaining: [Int32: Int64]
        var records: [Int32: [Int64: KafkaRecord]] = [:]
        var waiter: CheckedContinuation<[KafkaRecord], Never>?
        var isDone: Bool { self.remaining.isEmpty }
    }

    private let state: Mutex<State>

    init(ends: [Int32: Int64]) {
        self.state = Mutex(State(remaining: ends))
    }

    func consumer(_ control: KafkaConsumerControl, didReceive records: [KafkaRecord]) {
        let finished: (CheckedContinuation<[KafkaRecord], Never>, [KafkaRecord])? = self.state.withLock { state in
            for record in records {
                guard let end = state.remaining[record.partition], record.offset < end else { continue }
                // Keyed by offset: a record delivered twice is kept once.
                state.records[record.partition, default: [:]][record.offset] = record
                if record.offset + 1 >= end {
                    state.remaining[record.partition] = nil
                }
            }
            guard state.isDone, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.records.values.flatMap(\.values))
        }
        if let (waiter, records) = finished {
            waiter.resume(returning: records)
        }
    }

    /// Ends the read with what arrived so far (a partition's last offsets may never come: a transaction marker,
    /// or records removed by retention meanwhile).
    func finishEarly() {
        let finished: (CheckedContinuation<[KafkaRecord], Never>, [KafkaRecord])? = self.state.withLock { state in
            state.remaining.removeAll()
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.records.values.flatMap(\.values))
        }
        if let (waiter, records) = finished {
            waiter.resume(returning: records)
        }
    }

    /// Waits until every partition was read to its end.
    func records() async -> [KafkaRecord] {
        await withCheckedContinuation { continuation in
            let ready: [KafkaRecord]? = self.state.withLock { state in
                guard state.isDone else {
                    state.waiter = continuation
                    return nil
                }
                return state.records.values.flatMap(\.values)
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
