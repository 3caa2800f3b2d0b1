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

/// The worker pool: `concurrency` lanes, each worked by one long-lived task on a ``DispatchTaskExecutor``.
///
/// A lane runs its work one item after another, in the order it was submitted; different lanes run in parallel.
/// A handler's runtime maps each record to a lane by its ordering key (see ``LaneAssignment``), so records of one
/// key keep their order while other keys run beside them, and hands a lane all its records of a poll batch as one
/// item, so that the pool costs a lock and a closure per lane and batch, not per record. Submitting never blocks;
/// a worker with nothing to do suspends until work arrives.
final class WorkerPool: Sendable {
    /// A unit of work: usually a run of records of one lane.
    typealias Work = @Sendable () async -> Void

    /// The number of lanes, which is also the most items running at once.
    let concurrency: Int
    private let lanes: [WorkerLane]
    private let executor: DispatchTaskExecutor
    private let nextLaneCounter = Atomic<Int>(0)

    /// Starts `concurrency` workers on `threads` Dispatch threads.
    init(concurrency: Int, threads: Int = System.coreCount, label: String) {
        self.concurrency = max(1, concurrency)
        self.lanes = (0..<self.concurrency).map { _ in WorkerLane() }
        self.executor = DispatchTaskExecutor(label: label, threads: threads)
        for lane in self.lanes {
            Task(executorPreference: self.executor) {
                while let items = await lane.take() {
                    for item in items {
                        await item()
                    }
                }
            }
        }
    }

    /// Queues `work` on lane `lane` (taken modulo the lane count).
    func submit(lane: Int, _ work: @escaping Work) {
        self.lanes[lane % self.concurrency].push(work)
    }

    /// Runs `work` on the pool's threads outside every lane (a record waiting for its retries).
    func detached(_ work: @escaping Work) {
        Task(executorPreference: self.executor) { await work() }
    }

    /// A lane for a new ordering domain (a partition), round robin over the pool, so that partitions of every
    /// handler spread evenly.
    func nextLane() -> Int {
        self.nextLaneCounter.add(1, ordering: .relaxed).oldValue % self.concurrency
    }

    /// Stops the workers once their current item finished; queued work that has not started is dropped.
    func stop() {
        for lane in self.lanes {
            lane.stop()
        }
    }
}

/// The queue of one lane of the ``WorkerPool`` and the continuation of its worker while it waits for work.
final class WorkerLane: Sendable {
    private struct State {
        var items: [WorkerPool.Work] = []
        var waiter: CheckedContinuation<[WorkerPool.Work]?, Never>?
        var isStopped = false
    }

    private let state = Mutex(State())

    /// Queues an item, waking the worker if it waits.
    func push(_ work: @escaping WorkerPool.Work) {
        let waiter: CheckedContinuation<[WorkerPool.Work]?, Never>? = self.state.withLock { state in
            guard !state.isStopped else { return nil }
            guard let waiter = state.waiter else {
                state.items.append(work)
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: [work])
    }

    /// Everything queued, in order, waiting for at least one item; `nil` once stopped.
    func take() async -> [WorkerPool.Work]? {
        let ready: [WorkerPool.Work]?? = self.state.withLock { state in
            if state.isStopped { return .some(nil) }
            guard !state.items.isEmpty else { return nil }
            defer { state.items.removeAll() }
            return state.items
        }
        if let ready {
            return ready
        }
        return await withCheckedContinuation { continuation in
            let now: [WorkerPool.Work]?? = self.state.withLock { state in
                if state.isStopped { return .some(nil) }
                guard state.items.isEmpty else {
                    defer { state.items.removeAll() }
                    return state.items
                }
                state.waiter = continuation
                return nil
            }
            if let now {
                continuation.resume(returning: now)
            }
        }
    }

    /// Drops queued items and ends the worker.
    func stop() {
        let waiter = self.state.withLock { state in
            state.isStopped = true
            state.items.removeAll()
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
