import Foundation
import Synchronization

/// One operation on an idempotency key, as the database stores apply it.
enum KeyOperation: Sendable {
    case claim(key: String, payloadHash: String, owner: String, lease: Duration, now: Date)
    case complete(key: String, payloadHash: String, owner: String, ttl: Duration, now: Date, effects: [EffectStatement])
    case release(key: String, owner: String)

    /// The key concerned.
    var key: String {
        switch self {
        case .claim(let key, _, _, _, _), .complete(let key, _, _, _, _, _), .release(let key, _): key
        }
    }
}

/// Group commit for the database stores: the operations that arrive while a batch is being written go together into
/// the next one, and each caller resumes with its own result when its batch is done.
///
/// A batch holds at most one operation per key: a key's later operations wait for the next batch, so they are
/// applied in arrival order and each sees the ones before it. The writer may then apply a batch's operations in any
/// order (by kind, as set-based statements) without changing what anyone sees.
final class GroupCommit: Sendable {
    /// Applies a batch: one result per operation, in the batch's order (`nil` for completions and releases).
    typealias Writer = @Sendable ([KeyOperation]) async -> [Result<IdempotencyClaim?, any Error>]

    private typealias Waiter = (operation: KeyOperation, continuation: CheckedContinuation<IdempotencyClaim?, any Error>)

    private struct Queue {
        var waiting: [Waiter] = []
        var isWriting = false
    }

    private let maxBatch: Int
    private let write: Writer
    private let queue = Mutex(Queue())

    /// A queue whose batches hold at most `maxBatch` operations, written by `write`.
    init(maxBatch: Int, write: @escaping Writer) {
        self.maxBatch = max(1, maxBatch)
        self.write = write
    }

    /// Queues an operation for the next batch, starting a writer if none is running, and returns its result.
    func submit(_ operation: KeyOperation) async throws -> IdempotencyClaim? {
        try await withCheckedThrowingContinuation { continuation in
            let startWriter = self.queue.withLock { queue in
                queue.waiting.append((operation, continuation))
                defer { queue.isWriting = true }
                return !queue.isWriting
            }
            if startWriter {
                Task { await self.drain() }
            }
        }
    }

    /// Writes batches until nothing waits.
    private func drain() async {
        while let batch = self.nextBatch() {
            let results = await self.write(batch.map(\.operation))
            for (waiter, result) in zip(batch, results) {
                waiter.continuation.resume(with: result)
            }
        }
    }

    /// Takes the next batch off the queue: the oldest operations, one per key, up to `maxBatch`; `nil` (and the
    /// writer stops) when nothing waits.
    private func nextBatch() -> [Waiter]? {
        self.queue.withLock { queue in
            guard !queue.waiting.isEmpty else {
                queue.isWriting = false
                return nil
            }
            var batch: [Waiter] = []
            var rest: [Waiter] = []
            var keys = Set<String>()
            for waiter in queue.waiting {
                if batch.count < self.maxBatch, keys.insert(waiter.operation.key).inserted {
                    batch.append(waiter)
                } else {
                    // Once a key is passed over, its later operations are too: the set already holds it.
                    keys.insert(waiter.operation.key)
                    rest.append(waiter)
                }
            }
            queue.waiting = rest
            return batch
        }
    }
}
