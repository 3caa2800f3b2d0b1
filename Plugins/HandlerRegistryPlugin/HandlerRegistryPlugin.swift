import Foundation
import PackagePlugin

/// Generates `registeredHandlers` for a worker executable: every public `Handler` of the handler modules it
/// depends on (library targets under `Sources/Handlers/`). Adding a handler is writing it in such a module and
/// depending on the module; nothing else to keep in sync.
@main
struct HandlerRegistryPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let modules = target.dependencies.compactMap { dependency -> SourceModuleTarget? in
            guard case .target(let dependency) = dependency, let module = dependency as? SourceModuleTarget,
                module.directoryURL.pathComponents.contains("Handlers")
            else { return nil }
            return module
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "RegisteredHandlers.swift")
        var arguments = ["registry", "--output", output.path()]
        var inputs: [URL] = []
        for module in modules {
            let files = module.sourceFiles(withSuffix: "swift").map(\.url)
            arguments += ["--module", module.name] + files.map { $0.path() }
            inputs += files
        }
        return [
            .buildCommand(
                displayName: "Generating the handler registry of \(target.name)",
                executable: try context.tool(named: "ConveyorPluginTool").url,
                arguments: arguments,
                inputFiles: inputs,
                outputFiles: [output]
            ),
        ]
    }
}
