/// What the runtime does with a record whose handler threw.
public enum FailureAction: Sendable, Hashable {
    /// Try again after the handler's backoff, up to its maximum attempts; then the dead-letter topic. The default.
    case retry
    /// Straight to the dead-letter topic: trying again cannot help (a payload that does not decode, a record the
    /// handler refuses).
    case deadLetter
    /// Acknowledge the record without its effect; it is counted and logged, not dead-lettered.
    case skip
}

/// An error that says itself how the runtime should treat the record (see ``Handler/classify(_:)``).
public protocol ClassifiedError: Error {
    /// What the runtime does with the record.
    var failureAction: FailureAction { get }
}

/// Thrown by a handler for a record that must not be retried: it goes to the dead-letter topic with `reason`.
public struct NonRetryableError: ClassifiedError, CustomStringConvertible {
    /// Why the record cannot be handled.
    public var reason: String

    /// A non-retryable failure with its reason.
    public init(_ reason: String) {
        self.reason = reason
    }

    public var failureAction: FailureAction { .deadLetter }
    public var description: String { self.reason }
}

/// Thrown by a handler for a record to acknowledge without effect (counted as skipped).
public struct SkipRecord: ClassifiedError, CustomStringConvertible {
    /// Why the record is skipped.
    public var reason: String

    /// A skip with its reason.
    public init(_ reason: String) {
        self.reason = reason
    }

    public var failureAction: FailureAction { .skip }
    public var description: String { self.reason }
}

extension Handler {
    /// The runtime's default classification: a ``ClassifiedError`` says itself; a payload that does not decode
    /// (``ConveyorError/Code/decodeFailed``) is not retryable; everything else is retried.
    public func classify(_ error: any Error) -> FailureAction {
        Self.defaultClassification(of: error)
    }

    /// The default classification, for handlers that override ``classify(_:)`` for some errors only.
    public static func defaultClassification(of error: any Error) -> FailureAction {
        if let classified = error as? any ClassifiedError {
            return classified.failureAction
        }
        if let conveyor = error as? ConveyorError, conveyor.code == .decodeFailed {
            return .deadLetter
        }
        return .retry
    }
}
