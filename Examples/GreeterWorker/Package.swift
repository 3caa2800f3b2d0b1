// swift-tools-version:6.1
// A user's worker package: its own handler module and a worker executable, on Conveyor.
import PackageDescription

let package = Package(
    name: "GreeterWorker",
    platforms: [.macOS(.v15)],
    dependencies: [
        // In your package: .package(url: "https://github.com/<owner>/conveyor", from: "0.1.0").
        // Here, the checkout this example lives in (through the `Conveyor` link, so the identity is stable).
        .package(path: "Conveyor"),
    ],
    targets: [
        .target(
            name: "GreeterHandlers",
            dependencies: [.product(name: "Conveyor", package: "Conveyor")],
            path: "Sources/Handlers/Greeter"
        ),
        .executableTarget(
            name: "worker",
            dependencies: ["GreeterHandlers", .product(name: "ConveyorCLI", package: "Conveyor")],
            plugins: [.plugin(name: "HandlerRegistryPlugin", package: "Conveyor")]
        ),
    ]
)
