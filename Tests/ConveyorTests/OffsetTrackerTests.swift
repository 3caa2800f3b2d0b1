@testable import Conveyor
@testable import RdKafka
import Synchronization
import Testing

@Suite("Offset tracker")
struct OffsetTrackerTests {
    let partition = TopicPartition("t", 0)

    /// Dispatches `offsets` and returns their tickets by offset.
    private func dispatch(_ offsets: [Int64], on tracker: OffsetTracker) -> [Int64: OffsetTracker.Ticket] {
        var tickets: [Int64: OffsetTracker.Ticket] = [:]
        for offset in offsets {
            tickets[offset] = tracker.dispatch(self.partition, offset: offset)
        }
        return tickets
    }

    /// A poll batch as the consumer hands it over, one record per `(topic, partition, offset)`, without payloads.
    private func batch(_ records: [(topic: String, partition: Int32, offset: Int64)]) -> [KafkaRecord] {
        let topics = Array(Set(records.map(\.topic))).sorted()
        let storage = KafkaBatchStorage(
            bytes: [], headers: [], topics: topics,
            slots: records.map { .init(key: nil, value: nil, headers: 0..<0, topic: topics.firstIndex(of: $0.topic)!, timestamp: nil) }
        )
        return records.enumerated().map {
            KafkaRecord(partition: $1.partition, offset: $1.offset, storage: storage, index: $0, topicIndex: storage.slots[$0].topic)
        }
    }

    @Test("A poll batch gets tickets per partition run; unassigned, excluded and already dispatched records get none")
    func batchDispatch() throws {
        let tracker = OffsetTracker()
        let other = TopicPartition("t", 1)
        tracker.assign(self.partition)
        tracker.assign(other)
        let records = self.batch([
            ("t", 0, 5), ("t", 0, 6), ("t", 1, 0), ("u", 0, 3), ("t", 0, 7), ("t", 1, 1), ("t", 1, 1), ("t", 0, 4), ("t", 0, 8),
        ])
        // Excluded like records of a retry topic that are not due: the first of its partition and every later one.
        let tickets = tracker.dispatch(records, excluding: [4, 8])
        #expect(tickets.map { $0?.sequence } == [0, 1, 0, nil, nil, 1, nil, nil, nil],
                "u[0] is not assigned, t[0]@7 and @8 are excluded, t[1]@1 again and t[0]@4 are not past what was dispatched")
        tracker.finish(tickets.compactMap { $0 })
        #expect(Set(tracker.takeCommittable()) == [
            TopicPartitionOffset(self.partition, offset: 7), TopicPartitionOffset(other, offset: 2),
        ], "nothing committed past the excluded records")
        #expect(tracker.dispatch(self.partition, offset: 6) == nil, "a redelivery of a dispatched record is refused")
        #expect(tracker.dispatch(self.partition, offset: 7)?.sequence == 2, "an excluded record comes again and runs")
    }

    @Test("Out-of-order completions commit only the finished prefix")
    func outOfOrder() throws {
        let tracker = OffsetTracker()
        let epoch = tracker.assign(self.partition)
        let tickets = self.dispatch([0, 1, 2, 3, 4], on: tracker)
        #expect(tickets.count == 5)
        #expect(tickets.values.allSatisfy { $0.epoch == epoch })
        tracker.finish(try #require(tickets[2]))
        tracker.finish(try #require(tickets[1]))
        #expect(tracker.takeCommittable().isEmpty, "offset 0 is not finished: nothing may be committed")
        tracker.finish(try #require(tickets[0]))
        #expect(tracker.takeCommittable() == [TopicPartitionOffset(self.partition, offset: 3)])
        #expect(tracker.takeCommittable().isEmpty, "unchanged offsets are not handed out twice")
        tracker.finish(try #require(tickets[4]))
        #expect(tracker.takeCommittable().isEmpty)
        #expect(tracker.inFlight(self.partition) == 1, "offset 4 finished; only 3 is in flight")
        tracker.finish(try #require(tickets[3]))
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 5)])
        #expect(tracker.inFlight(self.partition) == 0)
        #expect(!tracker.finish(try #require(tickets[3])), "a record finishes once")
    }

    @Test("Gaps in offsets (compacted or control records) do not block the watermark")
    func gaps() throws {
        let tracker = OffsetTracker()
        tracker.assign(self.partition)
        let tickets = self.dispatch([10, 13, 20], on: tracker)
        tracker.finish(try #require(tickets[13]))
        tracker.finish(try #require(tickets[10]))
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 14)])
        tracker.finish(try #require(tickets[20]))
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 21)])
    }

    @Test("Long runs: tickets stay valid while the tracker compacts, in any completion order")
    func longRuns() throws {
        let tracker = OffsetTracker()
        tracker.assign(self.partition)
        let offsets = (0..<20_000).map { Int64($0) * 2 }
        let tickets = self.dispatch(offsets, on: tracker)
        // Finish the second half first, then the first half backwards: nothing is committable until offset 0.
        for offset in offsets[10_000...] {
            tracker.finish(try #require(tickets[offset]))
        }
        for offset in offsets[1..<10_000].reversed() {
            tracker.finish(try #require(tickets[offset]))
        }
        #expect(tracker.committable([self.partition]).isEmpty)
        tracker.finish(try #require(tickets[0]))
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 39_999)])
        #expect(tracker.inFlight(self.partition) == 0)
        let next = try #require(tracker.dispatch(self.partition, offset: 40_000))
        #expect(next.sequence == 20_000)
    }

    @Test("Completions from an older assignment are ignored; revocation lists what was abandoned")
    func epochs() throws {
        let tracker = OffsetTracker()
        let first = tracker.assign(self.partition)
        let tickets = self.dispatch([0, 1], on: tracker)
        tracker.finish(try #require(tickets[0]))
        #expect(tracker.revoke(self.partition) == [1])
        #expect(!tracker.finish(try #require(tickets[1])), "the partition is gone")
        let second = tracker.assign(self.partition)
        #expect(second != first)
        #expect(!tracker.mayStart(try #require(tickets[1])), "a record of the old assignment may not start")
        let again = try #require(tracker.dispatch(self.partition, offset: 1))
        #expect(tracker.mayStart(again))
        #expect(again.epoch == second)
        #expect(!tracker.finish(try #require(tickets[1])), "stale epoch")
        #expect(tracker.committable([self.partition]).isEmpty)
        #expect(tracker.finish(again))
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 2)])
    }

    @Test("A revoking partition: gaps below started work still run, later records are skipped and never passed")
    func revoking() throws {
        let tracker = OffsetTracker()
        let epoch = tracker.assign(self.partition)
        let tickets = self.dispatch([0, 1, 2, 3, 4], on: tracker)
        tracker.finish(try #require(tickets[0]))
        // Offset 2 is running on some lane; offset 1 waits on another.
        tracker.beginRevoke([self.partition], started: [epoch: try #require(tickets[2]).sequence])
        #expect(tracker.mayStart(try #require(tickets[1])), "needed so that the running record can be committed")
        #expect(tracker.mayStart(try #require(tickets[2])))
        #expect(!tracker.mayStart(try #require(tickets[3])), "nothing after started work may start")
        #expect(tracker.dispatch(self.partition, offset: 5) == nil, "nor is anything dispatched any more")
        #expect(tracker.inFlight(self.partition) == 4)
        #expect(tracker.skip(try #require(tickets[3])))
        #expect(!tracker.finish(try #require(tickets[3])), "settled once")
        tracker.finish(try #require(tickets[2]))
        tracker.finish(try #require(tickets[1]))
        #expect(tracker.inFlight(self.partition) == 1)
        #expect(tracker.skip(try #require(tickets[4])))
        #expect(tracker.inFlight(self.partition) == 0)
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 3)])
        #expect(tracker.revoke(self.partition).isEmpty, "skipped records are not abandoned ones")
    }

    @Test("The watermark never passes a skipped record, even when later ones finished")
    func skippedBlocks() throws {
        let tracker = OffsetTracker()
        tracker.assign(self.partition)
        let tickets = self.dispatch([0, 1, 2], on: tracker)
        tracker.skip(try #require(tickets[1]))
        tracker.finish(try #require(tickets[0]))
        tracker.finish(try #require(tickets[2]))
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 1)])
    }

    @Test("A record of an unassigned partition, or one already dispatched, is not dispatched")
    func refusedDispatch() throws {
        let tracker = OffsetTracker()
        #expect(tracker.dispatch(self.partition, offset: 0) == nil)
        tracker.assign(self.partition)
        let five = try #require(tracker.dispatch(self.partition, offset: 5))
        #expect(tracker.dispatch(self.partition, offset: 5) == nil)
        tracker.finish(five)
        #expect(tracker.dispatch(self.partition, offset: 3) == nil)
        #expect(tracker.dispatch(self.partition, offset: 6) != nil)
    }
}

@Suite("Lane assignment")
struct LaneAssignmentTests {
    @Test("Equal keys share a lane; keys spread over every lane")
    func keys() {
        let lanes = 16
        #expect(LaneAssignment.lane(ofKey: [1, 2, 3], lanes: lanes) == LaneAssignment.lane(ofKey: [1, 2, 3], lanes: lanes))
        var used = Set<Int>()
        for index in 0..<1_000 {
            let lane = LaneAssignment.lane(ofKey: Array("key-\(index)".utf8), lanes: lanes)
            #expect((0..<lanes).contains(lane))
            used.insert(lane)
        }
        #expect(used.count == lanes, "1,000 keys reach all 16 lanes")
    }
}

@Suite("Backpressure")
struct BackpressureTests {
    @Test("Pauses above the budget, resumes below half of it, and does not flap in between")
    func watermarks() {
        var budget = Backpressure(maxRecords: 100, maxBytes: 1_000)
        #expect(budget.add(records: 100, bytes: 10) == .none)
        #expect(budget.add(records: 1, bytes: 10) == .pause)
        #expect(budget.add(records: 10, bytes: 10) == .none, "already paused")
        #expect(budget.remove(records: 30, bytes: 0) == .none, "81 in flight is above the low watermark")
        #expect(budget.remove(records: 31, bytes: 0) == .resume)
        #expect(budget.remove(records: 10, bytes: 0) == .none)
        #expect(budget.add(records: 1, bytes: 2_000) == .pause, "bytes count too")
        #expect(budget.remove(records: 0, bytes: 1_600) == .resume)
    }

    @Test("A spent process budget holds reading for its hold limit, then pauses; freeing it ends both and says so")
    func holdThenPause() {
        let budget = ProcessBudget(maxRecords: 100, maxBytes: 1_000)
        let resumed = Mutex(0)
        budget.onResume { resumed.withLock { $0 += 1 } }
        #expect(budget.holdDeadline(now: .now) == nil, "not spent")
        let before = ContinuousClock.now
        #expect(budget.add(records: 101, bytes: 0))
        let deadline = budget.holdDeadline(now: .now)
        #expect(deadline != nil)
        if let deadline {
            #expect(deadline >= before + ProcessBudget.holdLimit)
            #expect(deadline <= .now + ProcessBudget.holdLimit)
            #expect(budget.holdDeadline(now: deadline) == nil, "spent for the whole hold: pause instead")
        }
        #expect(budget.isPaused)
        budget.remove(records: 60, bytes: 0)
        #expect(!budget.isPaused)
        #expect(budget.holdDeadline(now: .now) == nil)
        #expect(resumed.withLock { $0 } == 1)
    }
}
