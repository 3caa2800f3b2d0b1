/// The one error type of the `Conveyor` module.
public struct ConveyorError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short, stable name such as `decode-failed`.
        public let name: String

        private init(_ name: String) {
            self.name = name
        }

        public var description: String { self.name }

        /// A configuration key is missing, unknown or has a bad value.
        public static let configuration = Code("configuration")
        /// A handler name is not registered in this executable.
        public static let unknownHandler = Code("unknown-handler")
        /// A record's payload could not be decoded into the handler's type.
        public static let decodeFailed = Code("decode-failed")
        /// Work could not finish before a deadline (drain on revoke, shutdown).
        public static let timedOut = Code("timed-out")
        /// The idempotency store cannot be reached or refused an operation.
        public static let idempotencyStore = Code("idempotency-store")
        /// A transactional effect found its record's key no longer claimed by this process (its lease ended and
        /// another process took it over): nothing of it was written.
        public static let idempotencyClaimLost = Code("idempotency-claim-lost")
    }

    /// What went wrong.
    public let code: Code
    /// What failed, naming the key, handler, record or value concerned.
    public let message: String
    /// Whether trying again may succeed. Decode failures and configuration errors never do.
    public let isRetryable: Bool
    /// The source file that raised the error.
    public let file: String
    /// The source line that raised the error.
    public let line: Int

    /// Creates an error.
    public init(_ code: Code, _ message: String, isRetryable: Bool = false, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.isRetryable = isRetryable
        self.file = file
        self.line = line
    }

    public var description: String { "ConveyorError(\(self.code)): \(self.message)" }
}
