import Synchronization

/// A value that changes from any thread, with waits for a condition on it that end at a deadline.
///
/// Tests use it instead of sleeping: each change re-checks the waiting conditions, and a wait fails with
/// ``Timeout`` (naming what it waited for and the last value seen) when its deadline passes first.
public final class AwaitableState<Value: Sendable>: Sendable {
    /// A wait whose deadline passed.
    public struct Timeout: Error, CustomStringConvertible {
        /// What was awaited, and the value when the deadline passed.
        public let description: String
    }

    private struct Waiter {
        let condition: @Sendable (Value) -> Bool
        let continuation: CheckedContinuation<Value, any Error>
    }

    private struct Storage {
        var value: Value
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
    }

    private let storage: Mutex<Storage>

    /// Creates the state with an initial value.
    public init(_ value: Value) {
        self.storage = Mutex(Storage(value: value))
    }

    /// The current value.
    public var value: Value { self.storage.withLock { $0.value } }

    /// Changes the value and resumes every wait whose condition now holds.
    public func update(_ change: (inout Value) -> Void) {
        let (ready, value): ([CheckedContinuation<Value, any Error>], Value) = self.storage.withLock { storage in
            change(&storage.value)
            var ready: [CheckedContinuation<Value, any Error>] = []
            for (id, waiter) in storage.waiters where waiter.condition(storage.value) {
                ready.append(waiter.continuation)
                storage.waiters[id] = nil
            }
            return (ready, storage.value)
        }
        ready.forEach { $0.resume(returning: value) }
    }

    /// Waits until `condition` holds, for at most `timeout`; returns the value that satisfied it.
    ///
    /// - Throws: ``Timeout`` describing `what` and the last value.
    @discardableResult
    public func wait(
        for what: String,
        timeout: Duration = .seconds(30),
        until condition: @escaping @Sendable (Value) -> Bool
    ) async throws -> Value {
        let id: Int = self.storage.withLock { storage in
            defer { storage.nextID += 1 }
            return storage.nextID
        }
        let deadline = Task {
            try await Task.sleep(for: timeout)
            self.expire(id, what: what, timeout: timeout)
        }
        defer { deadline.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let satisfied: Value? = self.storage.withLock { storage in
                if condition(storage.value) {
                    return storage.value
                }
                storage.waiters[id] = Waiter(condition: condition, continuation: continuation)
                return nil
            }
            if let satisfied {
                continuation.resume(returning: satisfied)
            }
        }
    }

    private func expire(_ id: Int, what: String, timeout: Duration) {
        let expired: (Waiter, Value)? = self.storage.withLock { storage in
            guard let waiter = storage.waiters.removeValue(forKey: id) else { return nil }
            return (waiter, storage.value)
        }
        if let (waiter, value) = expired {
            let shown = String(describing: value)
            let value = shown.count > 600 ? shown.prefix(600) + "…" : Substring(shown)
            waiter.continuation.resume(throwing: Timeout(description: "waited \(timeout) for \(what); last value: \(value)"))
        }
    }
}
