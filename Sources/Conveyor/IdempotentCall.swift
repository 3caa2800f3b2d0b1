import Foundation
import RdKafka
import Synchronization

/// How a handler finds a record's idempotency key, and what its keys promise.
public struct IdempotencySettings: Sendable, Hashable {
    /// Where the key comes from.
    public enum KeySource: Sendable, Hashable {
        /// A header (`header:<name>`; the default is `header:idempotency-key`).
        case header(String)
        /// The Kafka key.
        case recordKey
        /// The handler's ``Handler/idempotencyKey(for:)``.
        case handler
    }

    /// `idempotency.key`. Default `header:idempotency-key`.
    public var key: KeySource = .header("idempotency-key")
    /// `idempotency.required`: a record without a key is dead-lettered (reason `missing-idempotency-key`)
    /// instead of running without one. Default `false`.
    public var required = false
    /// `idempotency.lease_ms`: how long a claim holds before another process may take it over. Default 5 min.
    public var lease: Duration = .seconds(300)
    /// `idempotency.ttl_ms`: how long a completed key is remembered. Default 7 days.
    public var ttl: Duration = .seconds(7 * 24 * 3600)
    /// `idempotency.on_conflict: accept`: a completed key seen again with another payload counts as a duplicate
    /// instead of going to the dead-letter topic (reason `idempotency-conflict`, the default).
    public var acceptsConflicts = false

    /// The defaults.
    public init() {}
}

/// Why a record could not run under its idempotency key.
enum IdempotencyError: ClassifiedError, CustomStringConvertible {
    /// The handler requires a key and the record has none.
    case missingKey(String)
    /// The key completed before with another payload.
    case conflict(key: String)
    /// Another process, or another record of this one, holds the key; the record waits and tries again (not an
    /// attempt).
    case heldElsewhere(key: String, until: Date)
    /// The store cannot be reached; the record waits, its partition pauses (not an attempt; never dead-lettered).
    case storeUnavailable(any Error)
    /// A transactional effect found the key taken over by another process (this one's lease ended): nothing was
    /// written; the record waits for the key (not an attempt).
    case claimLost(key: String)

    var failureAction: FailureAction {
        switch self {
        case .missingKey, .conflict: .deadLetter
        case .heldElsewhere, .storeUnavailable, .claimLost: .retry
        }
    }

    /// Waits that do not count as attempts.
    var isWait: Bool {
        switch self {
        case .heldElsewhere, .storeUnavailable, .claimLost: true
        case .missingKey, .conflict: false
        }
    }

    var description: String {
        switch self {
        case .missingKey(let source): "no idempotency key (\(source))"
        case .conflict(let key): "idempotency key \(key) completed before with another payload"
        case .heldElsewhere(let key, let until): "idempotency key \(key) is held by another record or process until \(until)"
        case .storeUnavailable(let error): "idempotency store unavailable: \(error)"
        case .claimLost(let key): "idempotency key \(key) was taken over by another process after this one's lease ended"
        }
    }
}

/// Runs a handler under a record's idempotency key: claim, run, complete (or release on failure); a completed
/// key is acknowledged without running the handler.
struct IdempotentCall: Sendable {
    /// How a call ended, as far as the handler is concerned.
    enum Outcome: Sendable {
        /// The handler ran (the record had no key, and none is required).
        case handled
        /// The key had completed before: the handler did not run.
        case duplicate
        /// The handler ran; its key's completion (with the record's transactional effects) is still to be written
        /// (``complete(_:)``). The record is finished once it is; its error is the record's failure.
        case completing(CompletionRequest)
    }

    /// A claim made ahead of its record (``claimAhead(_:handler:)``).
    struct EarlyClaim: Sendable {
        let key: String
        let payloadHash: String
        let result: Result<IdempotencyClaim, any Error>
    }

    let settings: IdempotencySettings
    let store: any IdempotencyStore
    /// The handler name keys are scoped by.
    let scope: String
    /// This process, as the owner of its claims.
    let owner: String
    /// Records acknowledged because their key had completed.
    let duplicates: DuplicateCounter
    /// Keys whose records run in this process now, from claim to written completion.
    let running = RunningKeys()
    let metrics: HandlerMetrics

    /// Runs `handler` for `record` unless its key completed before, and waits for the completion; `false` if it
    /// was a duplicate.
    func run(_ record: Record, context: HandlerContext, handler: any Handler) async throws -> Bool {
        switch try await self.start(record, context: context, handler: handler, early: nil) {
        case .handled: return true
        case .duplicate: return false
        case .completing(let completion):
            try await self.complete([completion])[0].get()
            return true
        }
    }

    /// Writes completions (in one batch of the store): one result per request, with the errors a record's failure
    /// is made of.
    func complete(_ requests: [CompletionRequest]) async -> [Result<Void, any Error>] {
        defer { self.running.remove(requests.lazy.map(\.key)) }
        return await self.store.complete(requests).enumerated().map { index, result in
            result.mapError { error in
                switch error {
                case let error as ConveyorError where error.code == .idempotencyClaimLost:
                    IdempotencyError.claimLost(key: requests[index].key)
                case let error as ConveyorError where error.code == .idempotencyStore && error.isRetryable:
                    // The effect happened (unless it is transactional: then it rolled back with the completion);
                    // the record must not be acknowledged before its key says so.
                    IdempotencyError.storeUnavailable(error)
                default:
                    error
                }
            }
        }
    }

    /// Claims, at once, the keys of records about to run one after another (a lane's run), so that one batch of
    /// the store answers them all: by position, for the first record of each key (a later record of the same key
    /// must see what the first one did, so it claims when its turn comes).
    func claimAhead(_ records: [(position: Int, record: Record)], handler: any Handler) async -> [Int: EarlyClaim] {
        var seen = Set<String>()
        var wanted: [(position: Int, key: String, hash: String)] = []
        for (position, record) in records {
            guard let scoped = self.scopedKey(of: record, handler: handler) else { continue }
            guard seen.insert(scoped).inserted else { continue }
            wanted.append((position, scoped, Self.payloadHash(of: record.kafka)))
        }
        guard wanted.count > 1 else { return [:] }
        let now = Date()
        let results = await self.store.claim(wanted.map {
            ClaimRequest(key: $0.key, payloadHash: $0.hash, owner: self.owner, lease: self.settings.lease, now: now)
        })
        var claims: [Int: EarlyClaim] = [:]
        for (claim, result) in zip(wanted, results) {
            claims[claim.position] = EarlyClaim(key: claim.key, payloadHash: claim.hash, result: result)
        }
        return claims
    }

    /// Gives back claims made ahead for records that did not run (their partition went away).
    func release(_ claims: some Sequence<EarlyClaim>) async {
        for claim in claims {
            if case .success(.claimed) = claim.result {
                try? await self.store.release(claim.key, owner: self.owner)
            }
        }
    }

    /// Claims `record`'s key (or takes the claim made `early`), runs the handler, and starts writing the key's
    /// completion without waiting for it.
    func start(_ record: Record, context: HandlerContext, handler: any Handler, early: EarlyClaim?) async throws -> Outcome {
        let scoped: String
        let hash: String
        if let early {
            scoped = early.key
            hash = early.payloadHash
        } else {
            guard let key = self.scopedKey(of: record, handler: handler) else {
                if self.settings.required {
                    throw IdempotencyError.missingKey("\(self.settings.key)")
                }
                try await handler.handle(record, context: context)
                return .handled
            }
            scoped = key
            hash = Self.payloadHash(of: record.kafka)
        }
        // The store tells processes apart, not the records of one process: a second record of the key here (on
        // another lane) waits until the first one's completion is written, then claims again.
        guard self.running.insert(scoped) else {
            throw IdempotencyError.heldElsewhere(key: scoped, until: Date())
        }
        var keepsRunning = false
        defer {
            if !keepsRunning { self.running.remove([scoped]) }
        }
        let claim: IdempotencyClaim
        do {
            if let early {
                claim = try early.result.get()
            } else {
                claim = try await self.store.claim(scoped, payloadHash: hash, owner: self.owner, lease: self.settings.lease, now: Date())
            }
        } catch {
            throw IdempotencyError.storeUnavailable(error)
        }
        switch claim {
        case .completed(let completedHash):
            guard completedHash == hash || self.settings.acceptsConflicts else {
                throw IdempotencyError.conflict(key: scoped)
            }
            self.duplicates.count.add(1, ordering: .relaxed)
            self.metrics.increment(.duplicatesSkipped, topic: record.topic)
            context.logger.debug("Duplicate skipped: its idempotency key completed before", metadata: ["key": "\(scoped)"])
            return .duplicate
        case .inProgress(let until):
            throw IdempotencyError.heldElsewhere(key: scoped, until: until)
        case .claimed:
            let held = KeyClaim(key: scoped)
            do {
                try await handler.handle(record, context: context.claiming(held))
            } catch {
                try? await self.store.release(scoped, owner: self.owner)
                throw error
            }
            // Running until its completion is written (``complete(_:)``).
            keepsRunning = true
            return .completing(CompletionRequest(
                key: scoped, payloadHash: hash, owner: self.owner, ttl: self.settings.ttl, now: Date(), effects: held.effects
            ))
        }
    }

    /// The record's key scoped by handler (`<handler>/<key>`); `nil` when it has none, or an empty one.
    private func scopedKey(of record: Record, handler: any Handler) -> String? {
        switch self.settings.key {
        case .header(let name):
            guard let key = record.header(name), !key.isEmpty else { return nil }
            return "\(self.scope)/\(key)"
        case .recordKey:
            return record.kafka.withUnsafeKeyBytes { key in
                guard let key, !key.isEmpty else { return nil }
                return "\(self.scope)/\(String(decoding: key, as: UTF8.self))"
            }
        case .handler:
            guard let key = handler.idempotencyKey(for: record), !key.isEmpty else { return nil }
            return "\(self.scope)/\(key)"
        }
    }

    /// A 128-bit hash of the record's value (two 64-bit FNV-1a hashes with different offsets), as hex, each half
    /// without leading zeros (the form of the hashes that completed keys hold): enough to tell payloads apart, not
    /// a cryptographic digest. The value is read in place.
    static func payloadHash(of record: KafkaRecord) -> String {
        record.withUnsafeValueBytes { value in
            guard let value else { return "null" }
            var first: UInt64 = 0xcbf2_9ce4_8422_2325
            var second: UInt64 = 0x6c62_272e_07bb_0142
            for byte in value {
                first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                second = (second ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
            return String(first, radix: 16) + String(second, radix: 16)
        }
    }
}

/// The idempotency keys a handler's records hold in this process.
final class RunningKeys: Sendable {
    private let keys = Mutex(Set<String>())

    /// Adds `key`; `false` if a record holds it already.
    func insert(_ key: String) -> Bool {
        self.keys.withLock { $0.insert(key).inserted }
    }

    func remove(_ keys: some Sequence<String>) {
        self.keys.withLock { held in
            for key in keys {
                held.remove(key)
            }
        }
    }
}

/// Counts duplicates a handler skipped.
final class DuplicateCounter: Sendable {
    let count = Atomic<Int>(0)
}
