// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Conveyor",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RdKafka", targets: ["RdKafka"]),
        .library(name: "ConveyorCLI", targets: ["ConveyorCLI"]),
        .library(name: "Conveyor", targets: ["Conveyor"]),
        .library(name: "ConveyorTestKit", targets: ["ConveyorTestKit"]),
        .executable(name: "conveyor", targets: ["conveyor"]),
        .plugin(name: "HandlerRegistryPlugin", targets: ["HandlerRegistryPlugin"]),
        .plugin(name: "NewHandlerPlugin", targets: ["NewHandlerPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.0.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
    ],
    targets: [
        // MARK: - C
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),

        // MARK: - Libraries
        .target(
            name: "RdKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Conveyor",
            dependencies: [
                "RdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .target(
            name: "StoreHandlers",
            dependencies: ["Conveyor"],
            path: "Sources/Handlers/Store"
        ),
        .target(
            name: "ConveyorTestKit",
            dependencies: [
                "RdKafka",
                "Conveyor",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .target(
            name: "ConveyorCLI",
            dependencies: [
                "RdKafka",
                "Conveyor",
                "StoreHandlers",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: - Executables
        .executableTarget(
            name: "conveyor",
            dependencies: ["ConveyorCLI", "StoreHandlers"],
            plugins: ["HandlerRegistryPlugin"]
        ),

        // MARK: - Plugins and their tool
        .target(name: "HandlerScanner"),
        .executableTarget(name: "ConveyorPluginTool", dependencies: ["HandlerScanner"]),
        .plugin(
            name: "HandlerRegistryPlugin",
            capability: .buildTool(),
            dependencies: ["ConveyorPluginTool"]
        ),
        .plugin(
            name: "NewHandlerPlugin",
            capability: .command(
                intent: .custom(verb: "conveyor-new-handler", description: "Create a handler module with a test"),
                permissions: [.writeToPackageDirectory(reason: "to write the new handler module and its test")]
            ),
            dependencies: ["ConveyorPluginTool"]
        ),

        // MARK: - Tests
        .executableTarget(
            name: "LedgerWorker",
            dependencies: ["Conveyor", "ConveyorCLI"],
            path: "Tests/LedgerWorker"
        ),
        .testTarget(
            name: "RdKafkaTests",
            dependencies: [
                "RdKafka",
                "ConveyorTestKit",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "HandlerScannerTests",
            dependencies: ["HandlerScanner"]
        ),
        .testTarget(
            name: "ConveyorTests",
            dependencies: [
                "Conveyor",
                "RdKafka",
                "ConveyorTestKit",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "conveyor",
                "LedgerWorker",
                "RdKafka",
                "ConveyorTestKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
    ]
)
