import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Facts about the machine.
enum System {
    /// The number of online processors.
    static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// Runs tasks' jobs on a fixed set of serial dispatch queues (one per core by default), so that handler code
/// runs on Dispatch threads, never on Swift's cooperative pool or a poll thread, and so that many workers do
/// not turn into many threads fighting over the same locks on few cores.
final class DispatchTaskExecutor: TaskExecutor {
    private let queues: [DispatchQueue]
    private let next = Atomic<Int>(0)

    init(label: String, threads: Int) {
        self.queues = (0..<max(1, threads)).map { DispatchQueue(label: "\(label).\($0)") }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let index = self.next.add(1, ordering: .relaxed).newValue % self.queues.count
        self.queues[index].async {
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

    /// Starts `concurrency` workers on `threads` Dispatch threads.
    init(concurrency: Int, threads: Int = System.coreCount, label: String) {
        self.concurrency = concurrency
        self.executor = DispatchTaskExecutor(label: label, threads: threads)
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
