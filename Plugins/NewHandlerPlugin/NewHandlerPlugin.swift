import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory conveyor-new-handler <Name>`: writes a new handler module
/// (`Sources/Handlers/<Name>/`) with a test, and prints the lines to add to `Package.swift`.
@main
struct NewHandlerPlugin: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        guard arguments.count == 1, let name = arguments.first else {
            Diagnostics.error("usage: swift package conveyor-new-handler <Name>")
            return
        }
        let process = Process()
        process.executableURL = try context.tool(named: "ConveyorPluginTool").url
        process.arguments = ["scaffold", "--package-directory", context.package.directoryURL.path(), "--name", name]
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            Diagnostics.error("conveyor-new-handler failed for '\(name)'")
        }
    }
}
