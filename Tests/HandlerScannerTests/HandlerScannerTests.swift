import HandlerScanner
import Testing

@Suite("Handler scanner")
struct HandlerScannerTests {
    @Test("Finds handler types, public or not, and ignores protocols, comments and other conformances")
    func declarations() {
        let source = """
            import Conveyor

            public struct InventoryHandler: Handler {
                public static let name = "inventory"
            }
            struct Internal: Sendable, Handler {}
            public final class Payments: Conveyor.Handler, Sendable {
            }
            public enum Shipping : Handler { }
            protocol LedgerHandler: Handler {}
            // public struct Commented: Handler {}
            public struct NotAHandler: HandlerContextProvider {}
            public struct Generic<T>: Handler where T: Sendable {}
            """
        let found = HandlerScanner.declarations(in: source)
        #expect(found.map(\.name) == ["InventoryHandler", "Internal", "Payments", "Shipping", "Generic"])
        #expect(found.map(\.isPublic) == [true, false, true, true, true])
    }

    @Test("The registry lists every handler by module, sorted, and imports only modules with handlers")
    func registry() {
        let source = HandlerScanner.registrySource(modules: [
            (module: "StoreHandlers", handlers: ["Shipping", "Inventory"]),
            (module: "Empty", handlers: []),
            (module: "Billing", handlers: ["Invoices"]),
        ])
        #expect(source.contains("import Billing\nimport StoreHandlers\n"))
        #expect(!source.contains("import Empty"))
        #expect(source.contains("""
            let registeredHandlers: [any Handler.Type] = [
                Billing.Invoices.self,
                StoreHandlers.Inventory.self,
                StoreHandlers.Shipping.self,
            ]
            """))
    }
}

@Suite("Scaffold")
struct ScaffoldTests {
    @Test("A new handler module has a handler and a test, named after it")
    func files() {
        let files = Scaffold.files(for: "FraudCheck")
        #expect(files.map(\.path) == [
            "Sources/Handlers/FraudCheck/FraudCheckHandler.swift",
            "Tests/FraudCheckHandlersTests/FraudCheckHandlerTests.swift",
        ])
        #expect(files[0].contents.contains("public struct FraudCheckHandler: Handler"))
        #expect(files[0].contents.contains(#"public static let name = "fraud-check""#))
        #expect(files[1].contents.contains("@testable import FraudCheckHandlers"))
        #expect(HandlerScanner.declarations(in: files[0].contents).map(\.name) == ["FraudCheckHandler"])
        #expect(Scaffold.packageInstructions(for: "FraudCheck").contains(#".target(name: "FraudCheckHandlers""#))
    }

    @Test("Bad names are refused with the reason", arguments: ["", "9lives", "fraud-check", "With Space"])
    func badNames(name: String) {
        #expect(Scaffold.validate(name)?.contains("not a valid handler name") == true)
    }

    @Test("Good names are accepted", arguments: ["Invoices", "FraudCheck2"])
    func goodNames(name: String) {
        #expect(Scaffold.validate(name) == nil)
    }
}
