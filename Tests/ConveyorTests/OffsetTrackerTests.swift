@testable import Conveyor
import RdKafka
import Testing

@Suite("Offset tracker")
struct OffsetTrackerTests {
    let partition = TopicPartition("t", 0)

    @Test("Out-of-order completions commit only the finished prefix")
    func outOfOrder() {
        var tracker = OffsetTracker()
        let epoch = tracker.assign(self.partition)
        for offset in 0..<5 {
            #expect(tracker.dispatch(self.partition, offset: Int64(offset)) == epoch)
        }
        tracker.finish(self.partition, offset: 2, epoch: epoch)
        tracker.finish(self.partition, offset: 1, epoch: epoch)
        #expect(tracker.takeCommittable().isEmpty, "offset 0 is not finished: nothing may be committed")
        tracker.finish(self.partition, offset: 0, epoch: epoch)
        #expect(tracker.takeCommittable() == [TopicPartitionOffset(self.partition, offset: 3)])
        #expect(tracker.takeCommittable().isEmpty, "unchanged offsets are not handed out twice")
        tracker.finish(self.partition, offset: 4, epoch: epoch)
        #expect(tracker.takeCommittable().isEmpty)
        tracker.finish(self.partition, offset: 3, epoch: epoch)
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 5)])
        #expect(tracker.inFlight(self.partition) == 0)
    }

    @Test("Gaps in offsets (compacted or control records) do not block the watermark")
    func gaps() {
        var tracker = OffsetTracker()
        let epoch = tracker.assign(self.partition)
        for offset: Int64 in [10, 13, 20] {
            _ = tracker.dispatch(self.partition, offset: offset)
        }
        tracker.finish(self.partition, offset: 13, epoch: epoch)
        tracker.finish(self.partition, offset: 10, epoch: epoch)
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 14)])
        tracker.finish(self.partition, offset: 20, epoch: epoch)
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 21)])
    }

    @Test("Completions from an older assignment are ignored; revocation lists what was abandoned")
    func epochs() {
        var tracker = OffsetTracker()
        let first = tracker.assign(self.partition)
        _ = tracker.dispatch(self.partition, offset: 0)
        _ = tracker.dispatch(self.partition, offset: 1)
        tracker.finish(self.partition, offset: 0, epoch: first)
        #expect(tracker.revoke(self.partition) == [1])
        let afterRevoke = tracker.finish(self.partition, offset: 1, epoch: first)
        #expect(!afterRevoke, "the partition is gone")
        let second = tracker.assign(self.partition)
        #expect(second != first)
        _ = tracker.dispatch(self.partition, offset: 1)
        let stale = tracker.finish(self.partition, offset: 1, epoch: first)
        #expect(!stale, "stale epoch")
        #expect(tracker.committable([self.partition]).isEmpty)
        let current = tracker.finish(self.partition, offset: 1, epoch: second)
        #expect(current)
        #expect(tracker.committable([self.partition]) == [TopicPartitionOffset(self.partition, offset: 2)])
    }

    @Test("A record of an unassigned partition, or one already dispatched, is not dispatched")
    func refusedDispatch() {
        var tracker = OffsetTracker()
        #expect(tracker.dispatch(self.partition, offset: 0) == nil)
        let epoch = tracker.assign(self.partition)
        #expect(tracker.dispatch(self.partition, offset: 5) == epoch)
        #expect(tracker.dispatch(self.partition, offset: 5) == nil)
        tracker.finish(self.partition, offset: 5, epoch: epoch)
        #expect(tracker.dispatch(self.partition, offset: 3) == nil)
        #expect(tracker.dispatch(self.partition, offset: 6) == epoch)
    }
}

@Suite("Lane scheduler")
struct LaneSchedulerTests {
    @Test("A lane runs one item at a time, in order; other lanes run meanwhile")
    func lanes() {
        var scheduler = LaneScheduler<String>()
        let a = LaneKey.key(topic: "t", key: [1])
        let b = LaneKey.key(topic: "t", key: [2])
        #expect(a == LaneKey.key(topic: "t", key: [1]), "equal keys share a lane")
        #expect(a != LaneKey.key(topic: "u", key: [1]), "topics are part of the lane")
        let readyA1 = scheduler.submit("a1", lane: a)
        let readyA2 = scheduler.submit("a2", lane: a)
        let readyB1 = scheduler.submit("b1", lane: b)
        #expect(readyA1)
        #expect(!readyA2, "a's lane already exists")
        #expect(readyB1)
        let first = scheduler.next()
        let second = scheduler.next()
        #expect(first?.1 == "a1")
        #expect(second?.1 == "b1")
        #expect(scheduler.next() == nil, "a2 waits for a1")
        scheduler.finish(a)
        #expect(scheduler.next()?.1 == "a2")
        scheduler.finish(a)
        scheduler.finish(b)
        #expect(scheduler.next() == nil)
        #expect(scheduler.queued == 0)
    }

    @Test("A busy lane goes to the back of the queue after each item")
    func fairness() {
        var scheduler = LaneScheduler<String>()
        let busy = LaneKey.partition(TopicPartition("t", 0))
        let other = LaneKey.partition(TopicPartition("t", 1))
        _ = scheduler.submit("busy1", lane: busy)
        _ = scheduler.submit("busy2", lane: busy)
        #expect(scheduler.next()?.1 == "busy1")
        _ = scheduler.submit("other1", lane: other)
        scheduler.finish(busy)
        #expect(scheduler.next()?.1 == "other1")
        #expect(scheduler.next()?.1 == "busy2")
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
}
