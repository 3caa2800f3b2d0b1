import Configuration
import Logging
import RdKafka

extension RuntimeConfiguration {
    /// One problem in a configuration, with the key path it concerns.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The key path, such as `workers.concurrency`.
        public var key: String
        /// What is wrong with it.
        public var message: String

        public var description: String { "\(self.key): \(self.message)" }
    }

    /// Reads a configuration (see `config/conveyor.yml` for every key and its default).
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` listing every problem with its key path.
    public init(reader: ConfigReader) throws {
        var parser = Parser(reader: reader)
        let configuration = parser.parse()
        guard parser.problems.isEmpty, let configuration else {
            throw ConveyorError(
                .configuration,
                "configuration has \(parser.problems.count) problem(s):\n"
                    + parser.problems.map { "  \($0)" }.joined(separator: "\n")
            )
        }
        self = configuration
    }

    /// Why an idempotency store URL cannot be used, or `nil`.
    static func storeProblem(_ url: String) -> String? {
        guard let separator = url.range(of: "://") else {
            return "expected a URL such as memory://, sqlite:///path/to/keys.db or postgres://user:password@host/database, got '\(url)'"
        }
        switch url[..<separator.lowerBound] {
        case "memory": return nil
        case "sqlite": return url[separator.upperBound...].isEmpty ? "'\(url)': no database path (sqlite:///path/to/keys.db)" : nil
        case "postgres", "postgresql":
            do {
                _ = try PostgresIdempotencyStore.configuration(url)
                return nil
            } catch let error as ConveyorError {
                return error.message
            } catch {
                return "\(error)"
            }
        case let scheme:
            return "unknown store '\(scheme)' in '\(url)'; use memory://, sqlite:///path or postgres://user:password@host/database"
        }
    }

    /// Opens the store `idempotency.store` names (for PostgreSQL: connects, and creates or migrates its table).
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` naming the store and the problem;
    ///   ``ConveyorError/Code/idempotencyStore`` when its server cannot be reached or refuses the login.
    public func makeIdempotencyStore(logger: Logger) async throws -> any IdempotencyStore {
        if let problem = Self.storeProblem(self.idempotencyStore) {
            throw ConveyorError(.configuration, "idempotency.store: \(problem)")
        }
        let url = self.idempotencyStore
        if url.hasPrefix("postgres") {
            return try await PostgresIdempotencyStore(url: url, logger: logger)
        }
        if let separator = url.range(of: "sqlite://") {
            return try SQLiteIdempotencyStore(path: String(url[separator.upperBound...]))
        }
        return MemoryIdempotencyStore(capacity: self.idempotencyMemoryCapacity)
    }

    /// Every problem of a configuration; empty when it is valid.
    public static func problems(in reader: ConfigReader) -> [Problem] {
        var parser = Parser(reader: reader)
        _ = parser.parse()
        return parser.problems
    }

    /// Reads keys as text and parses them itself, so that a bad value is reported with its key instead of being
    /// replaced by the default.
    private struct Parser {
        let reader: ConfigReader
        var problems: [Problem] = []

        mutating func parse() -> RuntimeConfiguration? {
            let bootstrap = self.reader.string(forKey: "kafka.bootstrap_servers")
            if bootstrap?.isEmpty ?? true {
                self.problem("kafka.bootstrap_servers", "required: the brokers, as host:port[,host:port...]")
            }
            var configuration = RuntimeConfiguration(bootstrapServers: bootstrap ?? "")
            configuration.kafkaProperties = self.properties("kafka.properties")
            configuration.sessionTimeout = self.milliseconds("kafka.session_timeout_ms", configuration.sessionTimeout)
            configuration.assignmentStrategy = self.choice("kafka.assignment_strategy", configuration.assignmentStrategy)
            configuration.concurrency = self.integer("workers.concurrency", configuration.concurrency, 1...100_000)
            configuration.commitInterval = self.milliseconds("commit.interval_ms", configuration.commitInterval)
            configuration.maxInFlightRecords = self.integer(
                "backpressure.max_in_flight_records", configuration.maxInFlightRecords, 1...100_000_000
            )
            configuration.maxInFlightBytes = self.integer(
                "backpressure.max_in_flight_bytes", configuration.maxInFlightBytes, 1...Int.max
            )
            configuration.drainTimeout = self.milliseconds("rebalance.drain_timeout_ms", configuration.drainTimeout)
            configuration.shutdownTimeout = self.milliseconds("shutdown.timeout_ms", configuration.shutdownTimeout)
            configuration.retryPolicy = self.retryPolicy(at: ["retry"], fallback: .default) ?? .default
            configuration.deadLetterDeliveryTimeout = self.milliseconds(
                "dead_letter.delivery_timeout_ms", configuration.deadLetterDeliveryTimeout
            )
            configuration.floodGuardWindow = self.integer(
                "dead_letter.flood_guard.window", configuration.floodGuardWindow, 1...1_000_000
            )
            configuration.crashMax = self.integer("crash.max", configuration.crashMax, 1...1_000)
            if let store = self.reader.string(forKey: "idempotency.store") {
                configuration.idempotencyStore = store
            }
            if let problem = RuntimeConfiguration.storeProblem(configuration.idempotencyStore) {
                self.problem("idempotency.store", problem)
            }
            configuration.idempotencyMemoryCapacity = self.integer(
                "idempotency.memory_capacity", configuration.idempotencyMemoryCapacity, 1...100_000_000
            )
            if let directory = self.reader.string(forKey: "crash.journal_directory") {
                if directory.isEmpty {
                    self.problem("crash.journal_directory", "must not be empty")
                }
                configuration.journalDirectory = directory
            }
            configuration.floodGuardMaxShare = self.fraction(
                "dead_letter.flood_guard.max_share", configuration.floodGuardMaxShare
            )

            let enabled = self.reader.stringArray(forKey: "handlers.enabled") ?? []
            if enabled.isEmpty {
                self.problem("handlers.enabled", "required: the names of the handlers to run")
            }
            for name in Set(enabled) where enabled.filter({ $0 == name }).count > 1 {
                self.problem("handlers.enabled", "'\(name)' is listed twice")
            }
            for name in enabled.reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) {
                var settings = HandlerSettings(name: name)
                let prefix = "handlers.\(name)"
                settings.groupID = self.reader.string(forKey: .init(["handlers", name, "group_id"])) ?? settings.groupID
                settings.topics = self.reader.stringArray(forKey: .init(["handlers", name, "topics"]))
                settings.ordering = self.choice("\(prefix).ordering", settings.ordering, key: ["handlers", name, "ordering"])
                settings.properties = self.properties("\(prefix).properties", key: ["handlers", name, "properties"])
                settings.retryPolicy = self.retryPolicy(at: ["handlers", name, "retry"], fallback: configuration.retryPolicy)
                settings.idempotency = self.idempotency(at: ["handlers", name, "idempotency"])
                for text in self.reader.stringArray(forKey: .init(["handlers", name, "retry_topics_ms"])) ?? [] {
                    guard let milliseconds = Int(text), (1...86_400_000).contains(milliseconds) else {
                        self.problem("\(prefix).retry_topics_ms", "expected delays in milliseconds (1...86400000), got '\(text)'")
                        continue
                    }
                    settings.retryTopicDelays.append(.milliseconds(milliseconds))
                }
                if let topic = self.reader.string(forKey: .init(["handlers", name, "dead_letter_topic"])) {
                    if topic.isEmpty {
                        self.problem("\(prefix).dead_letter_topic", "must not be empty")
                    }
                    settings.deadLetterTopic = topic
                }
                configuration.handlers.append(settings)
            }
            return self.problems.isEmpty ? configuration : nil
        }

        /// The retry policy under `components` (`retry` or `handlers.<name>.retry`), each key left out taken from
        /// `fallback`; `nil` if none of its keys is set.
        private mutating func retryPolicy(at components: [String], fallback: RetryPolicy) -> RetryPolicy? {
            let names = ["max_attempts", "backoff", "backoff_ms", "max_backoff_ms", "jitter"]
            guard names.contains(where: { self.reader.string(forKey: ConfigKey(components + [$0])) != nil }) else {
                return nil
            }
            let display = components.joined(separator: ".")
            var (base, cap, jitter, kind): (Duration, Duration, Double, String) = (.milliseconds(100), .seconds(30), 0.2, "exponential")
            switch fallback.backoff {
            case .exponential(let fallbackBase, let fallbackCap, let fallbackJitter):
                (base, cap, jitter) = (fallbackBase, fallbackCap, fallbackJitter)
            case .fixed(let wait):
                (base, kind) = (wait, "fixed")
            case .none:
                kind = "none"
            }
            let maxAttempts = self.number(components + ["max_attempts"], display, fallback.maxAttempts, 1...1_000_000)
            base = .milliseconds(self.number(components + ["backoff_ms"], display, base.wholeMilliseconds, 0...86_400_000))
            cap = .milliseconds(self.number(components + ["max_backoff_ms"], display, cap.wholeMilliseconds, 0...86_400_000))
            if let text = self.reader.string(forKey: ConfigKey(components + ["jitter"])) {
                if let value = Double(text), (0...1).contains(value) {
                    jitter = value
                } else {
                    self.problem("\(display).jitter", "expected a fraction in 0...1, got '\(text)'")
                }
            }
            switch self.reader.string(forKey: ConfigKey(components + ["backoff"])) ?? kind {
            case "exponential":
                if cap < base {
                    self.problem("\(display).max_backoff_ms", "must not be below \(display).backoff_ms")
                }
                return RetryPolicy(maxAttempts: maxAttempts, backoff: .exponential(base: base, max: cap, jitter: jitter))
            case "fixed":
                return RetryPolicy(maxAttempts: maxAttempts, backoff: .fixed(base))
            case "none":
                return RetryPolicy(maxAttempts: maxAttempts, backoff: .none)
            case let other:
                self.problem("\(display).backoff", "expected one of exponential, fixed, none, got '\(other)'")
                return fallback
            }
        }

        /// `handlers.<name>.idempotency.*`; `nil` unless `enabled: true` or a key source is given.
        private mutating func idempotency(at components: [String]) -> IdempotencySettings? {
            let display = components.joined(separator: ".")
            let enabled = self.reader.string(forKey: ConfigKey(components + ["enabled"]))
            let source = self.reader.string(forKey: ConfigKey(components + ["key"]))
            if let enabled, enabled != "true", enabled != "false" {
                self.problem("\(display).enabled", "expected true or false, got '\(enabled)'")
            }
            guard enabled == "true" || (source != nil && enabled != "false") else { return nil }
            var settings = IdempotencySettings()
            switch source {
            case nil: break
            case "key"?: settings.key = .recordKey
            case "handler"?: settings.key = .handler
            case let text? where text.hasPrefix("header:") && text.count > "header:".count:
                settings.key = .header(String(text.dropFirst("header:".count)))
            case let text?:
                self.problem("\(display).key", "expected header:<name>, key or handler, got '\(text)'")
            }
            if let required = self.reader.string(forKey: ConfigKey(components + ["required"])) {
                switch required {
                case "true": settings.required = true
                case "false": settings.required = false
                default: self.problem("\(display).required", "expected true or false, got '\(required)'")
                }
            }
            settings.lease = .milliseconds(self.number(components + ["lease_ms"], display, settings.lease.wholeMilliseconds, 1...86_400_000))
            settings.ttl = .milliseconds(self.number(components + ["ttl_ms"], display, settings.ttl.wholeMilliseconds, 1...Int.max))
            switch self.reader.string(forKey: ConfigKey(components + ["on_conflict"])) {
            case nil, "dead-letter"?: break
            case "accept"?: settings.acceptsConflicts = true
            case let other?: self.problem("\(display).on_conflict", "expected dead-letter or accept, got '\(other)'")
            }
            return settings
        }

        private mutating func number(_ components: [String], _ display: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
            guard let text = self.reader.string(forKey: ConfigKey(components)) else { return fallback }
            guard let value = Int(text), range.contains(value) else {
                self.problem(
                    "\(display).\(components.last!)",
                    "expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'"
                )
                return fallback
            }
            return value
        }

        private mutating func fraction(_ key: String, _ fallback: Double) -> Double {
            guard let text = self.reader.string(forKey: ConfigKey(key)) else { return fallback }
            guard let value = Double(text), (0...1).contains(value) else {
                self.problem(key, "expected a fraction in 0...1, got '\(text)'")
                return fallback
            }
            return value
        }

        private mutating func problem(_ key: String, _ message: String) {
            self.problems.append(Problem(key: key, message: message))
        }

        private mutating func integer(_ key: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
            guard let text = self.reader.string(forKey: ConfigKey(key)) else { return fallback }
            guard let value = Int(text), range.contains(value) else {
                self.problem(key, "expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
                return fallback
            }
            return value
        }

        private mutating func milliseconds(_ key: String, _ fallback: Duration) -> Duration {
            .milliseconds(self.integer(key, fallback.wholeMilliseconds, 1...86_400_000))
        }

        private mutating func choice<Value: RawRepresentable & CaseIterable>(
            _ key: String,
            _ fallback: Value,
            key components: [String]? = nil
        ) -> Value where Value.RawValue == String {
            let configKey = components.map { ConfigKey($0) } ?? ConfigKey(key)
            guard let text = self.reader.string(forKey: configKey) else { return fallback }
            guard let value = Value(rawValue: text) else {
                let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
                self.problem(key, "expected one of \(allowed), got '\(text)'")
                return fallback
            }
            return value
        }

        private mutating func properties(_ key: String, key components: [String]? = nil) -> [String: String] {
            let configKey = components.map { ConfigKey($0) } ?? ConfigKey(key)
            var result: [String: String] = [:]
            for entry in self.reader.stringArray(forKey: configKey) ?? [] {
                guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                    self.problem(key, "expected name=value, got '\(entry)'")
                    continue
                }
                let name = String(entry[..<equals])
                let value = String(entry[entry.index(after: equals)...])
                do {
                    var probe = try KafkaConfiguration(bootstrapServers: "check")
                    try probe.set(name, value)
                    result[name] = value
                } catch let error as KafkaError {
                    self.problem(key, error.message)
                } catch {
                    self.problem(key, "\(error)")
                }
            }
            return result
        }
    }
}
