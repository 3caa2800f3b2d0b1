/// How records of one handler are ordered while they run in parallel.
public enum Ordering: String, Sendable, CaseIterable {
    /// Records with the same key run one after another in offset order; different keys run in parallel, even
    /// within one partition. Records without a key are ordered by partition. The default.
    case key
    /// Records of one partition run one after another; partitions run in parallel.
    case partition
    /// No order: every record may run in parallel with every other.
    case none
}

/// A message handler: the unit of user code Conveyor runs.
///
/// Each handler is its own consumer group, so every handler receives every record of its topics
/// (publish/subscribe), and the records of one handler are spread over all processes that run it (work queue).
/// A handler returns normally when the record's effect happened; it throws to have the record retried.
public protocol Handler: Sendable {
    /// The name the handler is registered and configured under, such as `inventory`.
    static var name: String { get }

    /// Creates the handler. It is created once per process and shared by every record.
    init()

    /// The topics whose records the handler receives.
    var topics: [String] { get }

    /// Whether the handler reads ``Record/headers``. Default `true`. A handler that never does may say `false`:
    /// its consumer then skips parsing headers, which librdkafka 2.0.2 does with an allocation per record even
    /// for records without any. Its records then have no headers.
    static var readsHeaders: Bool { get }

    /// Handles one record. Called on Conveyor's worker pool; may suspend. The requirement runs on its caller's
    /// executor (`nonisolated(nonsending)`), which saves the runtime executor switches per record; implement it as
    /// a plain `func handle(_:context:) async throws`, which runs on the worker pool all the same.
    nonisolated(nonsending) func handle(_ record: Record, context: HandlerContext) async throws

    /// The record's idempotency key, when the handler is configured with `idempotency.key: handler`. Default `nil`.
    func idempotencyKey(for record: Record) -> String?

    /// The handler's idempotency keys when the configuration says nothing (`handlers.<name>.idempotency`, which
    /// wins). Default `nil`: without keys. A handler whose effects are transactional declares them here.
    static var idempotency: IdempotencySettings? { get }

    /// Statements that create the tables the handler's transactional effects write to, run by the idempotency
    /// store at start-up (`CREATE TABLE IF NOT EXISTS ...`, in SQL both SQLite and PostgreSQL take). Default none.
    static var storeSchema: [String] { get }

    /// What to do with a record whose ``handle(_:context:)`` threw `error`. The default (see
    /// ``Handler/defaultClassification(of:)``) retries, except ``ClassifiedError``s and decode failures.
    func classify(_ error: any Error) -> FailureAction
}

extension Handler {
    /// No key of the handler's own.
    public func idempotencyKey(for record: Record) -> String? { nil }

    /// No idempotency keys unless configured.
    public static var idempotency: IdempotencySettings? { nil }

    /// No tables of the handler's own.
    public static var storeSchema: [String] { [] }

    /// Handlers read headers unless they say otherwise.
    public static var readsHeaders: Bool { true }

    /// The handler's name, from an instance.
    public var name: String { Self.name }
}
