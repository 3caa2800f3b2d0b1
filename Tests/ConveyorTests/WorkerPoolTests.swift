@testable import Conveyor
import ConveyorTestKit
import RdKafka
import Synchronization
import Testing

@Suite("Worker pool")
struct WorkerPoolTests {
    @Test("A lane runs its items in order, one at a time; lanes run in parallel")
    func ordering() async throws {
        let pool = WorkerPool(concurrency: 4, label: "test.pool")
        defer { pool.stop() }
        struct Observed: Sendable {
            var running: [Int: Int] = [:]
            var maxRunning = 0
            var maxRunningInOneLane = 0
            var order: [Int: [Int]] = [:]
            var done = 0
        }
        let observed = AwaitableState(Observed())
        for index in 0..<400 {
            let lane = index % 8
            pool.submit(lane: lane) {
                observed.update { state in
                    state.running[lane % 4, default: 0] += 1
                    state.maxRunning = max(state.maxRunning, state.running.values.reduce(0, +))
                    state.maxRunningInOneLane = max(state.maxRunningInOneLane, state.running[lane % 4]!)
                    state.order[lane, default: []].append(index)
                }
                try? await Task.sleep(for: .microseconds(200))
                observed.update { state in
                    state.running[lane % 4]! -= 1
                    state.done += 1
                }
            }
        }
        let final = try await observed.wait(for: "400 items") { $0.done == 400 }
        #expect(final.maxRunningInOneLane == 1, "lanes 8 and 4 are the same lane of four")
        #expect(final.maxRunning <= 4)
        #expect(final.maxRunning > 1, "different lanes ran in parallel")
        for lane in 0..<8 {
            #expect(final.order[lane] == Array(stride(from: lane, to: 400, by: 8)), "lane \(lane) in order")
        }
    }

    @Test("Partitions get lanes round robin")
    func roundRobin() {
        let pool = WorkerPool(concurrency: 3, label: "test.pool")
        defer { pool.stop() }
        #expect((0..<6).map { _ in pool.nextLane() } == [0, 1, 2, 0, 1, 2])
    }
}
