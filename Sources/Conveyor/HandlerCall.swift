/// One call of a handler for a record: its context, under the record's idempotency key when the handler has them.
/// The lanes, the retries and the records queued behind a retried key all call the handler through it.
///
/// A class: a lane keeps one reference across a handler call instead of copying every part.
final class HandlerCall: Sendable {
    let handler: any Handler
    let environment: HandlerEnvironment
    /// The handler's idempotency keys, if it has them.
    let idempotency: IdempotentCall?

    init(handler: any Handler, environment: HandlerEnvironment, idempotency: IdempotentCall?) {
        self.handler = handler
        self.environment = environment
        self.idempotency = idempotency
    }

    /// The context of attempt `attempt` of `record`.
    func context(for record: Record, attempt: Int) -> HandlerContext {
        HandlerContext(environment: self.environment, record: record, attempt: attempt)
    }

    /// Runs the handler once for a record of a lane, without writing its idempotency key's completion: the
    /// completion to write, if any (the record is finished once it is written). `early` is the key's claim if it
    /// was made ahead (``IdempotentCall/claimAhead(_:handler:)``).
    nonisolated(nonsending) func start(_ record: Record, attempt: Int, early: IdempotentCall.EarlyClaim?) async throws -> CompletionRequest? {
        let context = self.context(for: record, attempt: attempt)
        guard let idempotency = self.idempotency else {
            try await self.handler.handle(record, context: context)
            return nil
        }
        if case .completing(let completion) = try await idempotency.start(record, context: context, handler: self.handler, early: early) {
            return completion
        }
        return nil
    }

    /// Runs the handler once (or acknowledges a duplicate, under idempotency keys).
    func callAsFunction(_ record: Record, attempt: Int) async throws {
        let context = self.context(for: record, attempt: attempt)
        if let idempotency = self.idempotency {
            _ = try await idempotency.run(record, context: context, handler: self.handler)
        } else {
            try await self.handler.handle(record, context: context)
        }
    }
}
