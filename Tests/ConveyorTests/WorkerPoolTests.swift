@testable import Conveyor
import ConveyorTestKit
import RdKafka
import Synchronization
import Testing

@Suite("Worker pool")
struct WorkerPoolTests {
    @Test("Same lane in order, different lanes in parallel, never more than the concurrency")
    func ordering() async throws {
        let pool = WorkerPool(concurrency: 4, label: "test.pool")
        defer { pool.stop() }
        struct Observed: Sendable {
            var running = 0
            var maxRunning = 0
            var order: [Int: [Int]] = [:]
            var done = 0
        }
        let observed = AwaitableState(Observed())
        var items: [(LaneKey, WorkerPool.Work)] = []
        for index in 0..<400 {
            let lane = index % 8
            items.append((.key(topic: "t", key: [UInt8(lane)]), {
                observed.update { state in
                    state.running += 1
                    state.maxRunning = max(state.maxRunning, state.running)
                    state.order[lane, default: []].append(index)
                }
                try? await Task.sleep(for: .microseconds(200))
                observed.update { state in
                    state.running -= 1
                    state.done += 1
                }
            }))
        }
        pool.submit(items)
        let final = try await observed.wait(for: "400 items") { $0.done == 400 }
        #expect(final.maxRunning <= 4)
        #expect(final.maxRunning > 1, "different lanes ran in parallel")
        for lane in 0..<8 {
            #expect(final.order[lane] == Array(stride(from: lane, to: 400, by: 8)), "lane \(lane) in order")
        }
    }
}
