/// The files of a new handler module: the handler, and a test that runs it on the embedded broker.
public enum Scaffold {
    /// A file to write, relative to the package directory.
    public struct File: Hashable, Sendable {
        /// The path relative to the package directory.
        public var path: String
        /// The contents.
        public var contents: String
    }

    /// Checks a handler name: letters and digits, starting with a letter (`Invoices`, `FraudCheck`).
    public static func validate(_ name: String) -> String? {
        guard let first = name.first, first.isLetter, name.allSatisfy({ $0.isLetter || $0.isNumber }) else {
            return "'\(name)' is not a valid handler name: use letters and digits, starting with a letter"
        }
        return nil
    }

    /// The module name for handler `name` (`Invoices` → `InvoicesHandlers`).
    public static func moduleName(_ name: String) -> String { "\(name)Handlers" }

    /// The registered name for handler `name` (`FraudCheck` → `fraud-check`).
    public static func registeredName(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase, !result.isEmpty {
                result.append("-")
            }
            result.append(Character(character.lowercased()))
        }
        return result
    }

    /// The files for handler `name`.
    public static func files(for name: String) -> [File] {
        let module = Self.moduleName(name)
        let registered = Self.registeredName(name)
        return [
            File(path: "Sources/Handlers/\(name)/\(name)Handler.swift", contents: """
                import Conveyor

                /// `\(registered)`: describe what this handler does with each record.
                public struct \(name)Handler: Handler {
                    public static let name = "\(registered)"
                    public let topics = ["\(registered)"]

                    public init() {}

                    public func handle(_ record: Record, context: HandlerContext) async throws {
                        context.logger.info("Handling a record")
                    }
                }

                """),
            File(path: "Tests/\(module)Tests/\(name)HandlerTests.swift", contents: """
                import Conveyor
                import ConveyorTestKit
                import RdKafka
                import Testing
                @testable import \(module)

                @Suite("\(name)Handler")
                struct \(name)HandlerTests {
                    @Test("It is registered under its name and subscribes to its topics")
                    func registration() throws {
                        let handler = try HandlerRegistry([\(name)Handler.self]).make("\(registered)")
                        #expect(handler.topics == ["\(registered)"])
                    }
                }

                """),
        ]
    }

    /// What to add to `Package.swift` for handler `name`.
    public static func packageInstructions(for name: String) -> String {
        let module = Self.moduleName(name)
        return """
            Add to Package.swift's targets:

                .target(name: "\(module)", dependencies: ["Conveyor"], path: "Sources/Handlers/\(name)"),
                .testTarget(name: "\(module)Tests", dependencies: ["\(module)", "Conveyor", "ConveyorTestKit", "RdKafka"]),

            and "\(module)" to the dependencies of your worker executable: its registry plugin picks the handler up.
            """
    }
}
