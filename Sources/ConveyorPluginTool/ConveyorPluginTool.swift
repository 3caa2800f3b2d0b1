import Foundation
import HandlerScanner

/// The tool behind Conveyor's plugins (they only gather paths and call it):
///
/// - `registry --output FILE --module NAME FILE... [--module NAME FILE...]`: writes the handler registry.
/// - `scaffold --package-directory DIR --name NAME`: writes a new handler module and its test.
@main
enum ConveyorPluginTool {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard !arguments.isEmpty else { fail("usage: ConveyorPluginTool registry|scaffold ...") }
        let command = arguments.removeFirst()
        switch command {
        case "registry": registry(arguments)
        case "scaffold": scaffold(arguments)
        default: fail("unknown command '\(command)'; expected registry or scaffold")
        }
    }

    private static func registry(_ arguments: [String]) {
        var output: String?
        var modules: [(module: String, handlers: [String])] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            switch argument {
            case "--output":
                guard index < arguments.count else { fail("--output needs a path") }
                output = arguments[index]
                index += 1
            case "--module":
                guard index < arguments.count else { fail("--module needs a name") }
                modules.append((arguments[index], []))
                index += 1
            default:
                guard !modules.isEmpty else { fail("\(argument): a source file must follow --module NAME") }
                guard let source = try? String(contentsOfFile: argument, encoding: .utf8) else {
                    fail("\(argument): cannot read")
                }
                for declaration in HandlerScanner.declarations(in: source) {
                    if declaration.isPublic {
                        modules[modules.count - 1].handlers.append(declaration.name)
                    } else {
                        warn("\(argument): handler \(declaration.name) is not public, so it is not registered")
                    }
                }
            }
        }
        guard let output else { fail("registry: --output is required") }
        write(HandlerScanner.registrySource(modules: modules), to: output)
    }

    private static func scaffold(_ arguments: [String]) {
        guard arguments.count == 4, arguments[0] == "--package-directory", arguments[2] == "--name" else {
            fail("usage: ConveyorPluginTool scaffold --package-directory DIR --name NAME")
        }
        let directory = arguments[1]
        let name = arguments[3]
        if let problem = Scaffold.validate(name) { fail(problem) }
        for file in Scaffold.files(for: name) {
            let path = directory + "/" + file.path
            guard !FileManager.default.fileExists(atPath: path) else { fail("\(file.path) already exists") }
            do {
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true
                )
            } catch {
                fail("\(file.path): cannot create its directory: \(error)")
            }
            write(file.contents, to: path)
            print("created \(file.path)")
        }
        print(Scaffold.packageInstructions(for: name))
    }

    private static func write(_ text: String, to path: String) {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            fail("\(path): cannot write: \(error)")
        }
    }

    private static func warn(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    private static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
}
