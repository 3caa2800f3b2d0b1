import Dispatch
import Synchronization

/// Runs tasks' jobs on a concurrent dispatch queue, so that handler code (which may block) runs on Dispatch
/// threads and never on Swift's cooperative pool or a poll thread.
final class DispatchTaskExecutor: TaskExecutor {
    private let queue: DispatchQueue

    init(label: String) {
        self.queue = DispatchQueue(label: label, attributes: .concurrent)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

/// The worker pool: `concurrency` workers on Dispatch run submitted work lane by lane (see ``LaneScheduler``).
///
/// Workers are long-lived tasks on a ``DispatchTaskExecutor``; submitting work never blocks, and a worker with
/// nothing to do suspends until work arrives.
final class WorkerPool: Sendable {
    /// A unit of work: one record through its handler, including retries.
    typealias Work = @Sendable () async -> Void

    private struct State {
        var scheduler = LaneScheduler<Work>()
        var idle: [CheckedContinuation<Bool, Never>] = []
        var isStopped = false
    }

    /// The number of workers.
    let concurrency: Int
    private let state = Mutex(State())
    private let executor: DispatchTaskExecutor

    /// Starts `concurrency` workers.
    init(concurrency: Int, label: String) {
        self.concurrency = concurrency
        self.executor = DispatchTaskExecutor(label: label)
        for _ in 0..<concurrency {
            Task(executorPreference: self.executor) { [self] in await self.work() }
        }
    }

    /// Queues `work` on `lane`.
    func submit(_ work: @escaping Work, lane: LaneKey) {
        self.submit(CollectionOfOne((lane, work)))
    }

    /// Queues several items at once (one lock for a whole poll batch).
    func submit(_ items: some Collection<(LaneKey, Work)>) {
        let wake: [CheckedContinuation<Bool, Never>] = self.state.withLock { state in
            var becameReady = 0
            for (lane, work) in items where state.scheduler.submit(work, lane: lane) {
                becameReady += 1
            }
            let count = min(becameReady, state.idle.count)
            defer { state.idle.removeLast(count) }
            return Array(state.idle.suffix(count))
        }
        wake.forEach { $0.resume(returning: true) }
    }

    /// Stops the workers once they are idle; queued work that has not started is dropped.
    func stop() {
        let idle = self.state.withLock { state in
            state.isStopped = true
            defer { state.idle.removeAll() }
            return state.idle
        }
        idle.forEach { $0.resume(returning: false) }
    }

    private func work() async {
        var finished: LaneKey?
        while true {
            let next: (LaneKey, Work)? = self.state.withLock { state in
                if let lane = finished {
                    state.scheduler.finish(lane)
                }
                return state.isStopped ? nil : state.scheduler.next()
            }
            finished = nil
            if let (lane, work) = next {
                await work()
                finished = lane
                continue
            }
            let keepGoing = await withCheckedContinuation { continuation in
                let immediate: Bool? = self.state.withLock { state in
                    if state.isStopped { return false }
                    if state.scheduler.hasReadyLane { return true }
                    state.idle.append(continuation)
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                }
            }
            if !keepGoing {
                return
            }
        }
    }
}
