import Foundation
import Synchronization

/// One operation on an idempotency key, as the database stores apply it (boxed: batches copy it around).
indirect enum KeyOperation: Sendable {
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

extension KeyOperation {
    init(_ request: ClaimRequest) {
        self = .claim(key: request.key, payloadHash: request.payloadHash, owner: request.owner, lease: request.lease, now: request.now)
    }

    init(_ request: CompletionRequest) {
        self = .complete(
            key: request.key, payloadHash: request.payloadHash, owner: request.owner, ttl: request.ttl, now: request.now,
            effects: request.effects
        )
    }
}

/// Group commit for the database stores: the operations that arrive while a batch is being written go together into
/// the next one, and each caller resumes with its own results when its batch is done. A caller may submit a group
/// of operations (a lane's claims, say) that goes into one batch.
///
/// A writer that applies a batch's operations one after the other, in the batch's order (SQLite), may get several
/// operations of one key in a batch: they are in arrival order. For a writer that applies them in any order (by
/// kind, as set-based statements: PostgreSQL), a batch holds at most one operation per key (`distinctKeys`): a
/// key's later operations wait for the next batch, so each sees the ones before it.
final class GroupCommit: Sendable {
    /// Applies a batch: one result per operation, in the batch's order (`nil` for completions and releases).
    typealias Writer = @Sendable ([KeyOperation]) async -> [Result<IdempotencyClaim?, any Error>]
    typealias Results = [Result<IdempotencyClaim?, any Error>]

    private struct Waiter {
        /// Operations on distinct keys.
        let operations: [KeyOperation]
        let continuation: CheckedContinuation<Results, Never>
    }

    private struct Queue {
        var waiting: [Waiter] = []
        var isWriting = false
    }

    private let maxBatch: Int
    private let distinctKeys: Bool
    private let write: Writer
    private let queue = Mutex(Queue())

    /// A queue whose batches hold at most `maxBatch` operations (or one larger group), written by `write`; with
    /// `distinctKeys`, at most one operation per key.
    init(maxBatch: Int, distinctKeys: Bool, write: @escaping Writer) {
        self.maxBatch = max(1, maxBatch)
        self.distinctKeys = distinctKeys
        self.write = write
    }

    /// Queues one operation for the next batch and returns its result.
    func submit(_ operation: KeyOperation) async throws -> IdempotencyClaim? {
        try await self.submit([operation])[0].get()
    }

    /// Queues operations for the next batches and returns their results, in order. They go into one batch, except
    /// under `distinctKeys`, where a key's second operation goes into a later one.
    func submit(_ operations: [KeyOperation]) async -> Results {
        guard self.distinctKeys else {
            return await self.enqueue(operations)
        }
        var rounds: [[(index: Int, operation: KeyOperation)]] = []
        var seen: [String: Int] = [:]
        for (index, operation) in operations.enumerated() {
            let round = seen[operation.key, default: 0]
            seen[operation.key] = round + 1
            if round == rounds.count {
                rounds.append([])
            }
            rounds[round].append((index, operation))
        }
        var results = Results(repeating: .success(nil), count: operations.count)
        for round in rounds {
            let answers = await self.enqueue(round.map(\.operation))
            for (entry, answer) in zip(round, answers) {
                results[entry.index] = answer
            }
        }
        return results
    }

    /// Queues a group of operations for one batch, starting a writer if none is running.
    private func enqueue(_ operations: [KeyOperation]) async -> Results {
        await withCheckedContinuation { continuation in
            let startWriter = self.queue.withLock { queue in
                queue.waiting.append(Waiter(operations: operations, continuation: continuation))
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
            let results = await self.write(batch.flatMap(\.operations))
            var start = 0
            for waiter in batch {
                waiter.continuation.resume(returning: Array(results[start..<start + waiter.operations.count]))
                start += waiter.operations.count
            }
        }
    }

    /// Takes the next batch off the queue: the oldest groups (under `distinctKeys`, those whose keys are not in it
    /// yet), up to `maxBatch` operations (the first group always goes); `nil` (and the writer stops) when nothing
    /// waits.
    private func nextBatch() -> [Waiter]? {
        self.queue.withLock { queue in
            guard !queue.waiting.isEmpty else {
                queue.isWriting = false
                return nil
            }
            guard self.distinctKeys else {
                var count = 0
                var taken = 0
                for waiter in queue.waiting {
                    guard taken == 0 || count + waiter.operations.count <= self.maxBatch else { break }
                    count += waiter.operations.count
                    taken += 1
                }
                defer { queue.waiting.removeFirst(taken) }
                return Array(queue.waiting.prefix(taken))
            }
            var batch: [Waiter] = []
            var rest: [Waiter] = []
            var keys = Set<String>()
            var count = 0
            for waiter in queue.waiting {
                let fits = batch.isEmpty || (count + waiter.operations.count <= self.maxBatch
                    && waiter.operations.allSatisfy { !keys.contains($0.key) })
                // A group passed over holds its keys back, so that no later group of the same keys overtakes it.
                keys.formUnion(waiter.operations.lazy.map(\.key))
                if fits {
                    batch.append(waiter)
                    count += waiter.operations.count
                } else {
                    rest.append(waiter)
                }
            }
            queue.waiting = rest
            return batch
        }
    }
}

/// A store whose key operations go through a ``GroupCommit``: claims, completions and releases, one or many.
protocol GroupCommitting: IdempotencyStore {
    var commits: GroupCommit { get }
}

extension GroupCommitting {
    public func claim(_ key: String, payloadHash: String, owner: String, lease: Duration, now: Date) async throws -> IdempotencyClaim {
        try await self.commits.submit(.claim(key: key, payloadHash: payloadHash, owner: owner, lease: lease, now: now))
            ?? .claimed
    }

    public func complete(
        _ key: String, payloadHash: String, owner: String, ttl: Duration, now: Date, effects: [EffectStatement]
    ) async throws {
        _ = try await self.commits.submit(
            .complete(key: key, payloadHash: payloadHash, owner: owner, ttl: ttl, now: now, effects: effects)
        )
    }

    public func release(_ key: String, owner: String) async throws {
        _ = try await self.commits.submit(.release(key: key, owner: owner))
    }

    public func claim(_ requests: [ClaimRequest]) async -> [Result<IdempotencyClaim, any Error>] {
        await self.commits.submit(requests.map(KeyOperation.init)).map { $0.map { $0 ?? .claimed } }
    }

    public func complete(_ requests: [CompletionRequest]) async -> [Result<Void, any Error>] {
        await self.commits.submit(requests.map(KeyOperation.init)).map { $0.map { _ in () } }
    }
}
