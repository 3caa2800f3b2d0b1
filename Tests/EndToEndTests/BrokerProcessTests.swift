import ConveyorTestKit
import Foundation
import RdKafka
import Testing

/// The parts of `conveyor consume` output the tests read.
private struct ConsumeLine: Decodable {
    struct Partition: Decodable, Hashable {
        var topic: String
        var partition: Int32
    }

    var event: String?
    var partitions: [Partition]?
    var partition: Int32?
    var offset: Int64?
    var value: String?
}

/// The assignment and records a `conveyor consume` process has printed.
private func parse(_ lines: [String]) -> (assignment: Set<Int32>, records: [ConsumeLine]) {
    var assignment: Set<Int32> = []
    var records: [ConsumeLine] = []
    for line in lines {
        guard let parsed = try? JSONDecoder().decode(ConsumeLine.self, from: Data(line.utf8)) else { continue }
        switch parsed.event {
        case "assigned": assignment.formUnion(parsed.partitions!.map(\.partition))
        case "revoked", "lost": assignment.subtract(parsed.partitions!.map(\.partition))
        case nil: records.append(parsed)
        default: break
        }
    }
    return (assignment, records)
}

@Suite("Processes around `conveyor broker`")
struct BrokerProcessTests {
    @Test("`conveyor broker` serves two consumer processes that split a topic; SIGTERM stops everything with 0")
    func twoProcessesSplitTopic() async throws {
        let broker = try ChildProcess(["broker", "--topic", "orders:6", "--log-level", "warning"])
        let bootstrap = try #require(try await broker.lines.wait(for: "the bootstrap line") { !$0.isEmpty }.first)
        #expect(bootstrap.hasPrefix("127.0.0.1:"))

        let consumerArguments = [
            "consume", "--bootstrap-servers", bootstrap, "--group", "split", "--topic", "orders",
            "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", "--log-level", "warning",
        ]
        let first = try ChildProcess(consumerArguments)
        try await first.lines.wait(for: "first assignment") { parse($0).assignment.count == 6 }
        let second = try ChildProcess(consumerArguments)
        try await second.lines.wait(for: "second assignment") { !parse($0).assignment.isEmpty }
        try await first.lines.wait(for: "the first process to give up partitions") {
            parse($0).assignment.count < 6
        }
        let assignmentA = parse(first.lines.value).assignment
        let assignmentB = parse(second.lines.value).assignment
        #expect(assignmentA.isDisjoint(with: assignmentB))
        #expect(assignmentA.union(assignmentB) == Set(0..<6))

        let kafka = try KafkaConfiguration(bootstrapServers: bootstrap)
        let producer = try KafkaProducer(configuration: kafka, logger: .init(label: "test"))
        for index in 0..<1_200 {
            let message = KafkaProducerMessage(topic: "orders", partition: Int32(index % 6), value: Array("o-\(index)".utf8))
            try await producer.produce(message) { _ in }
        }
        try await producer.flush(timeout: .seconds(30))
        await producer.close()

        try await first.lines.wait(for: "records of the first process") {
            parse($0).records.count >= assignmentA.count * 200
        }
        try await second.lines.wait(for: "records of the second process") {
            parse($0).records.count >= assignmentB.count * 200
        }
        let recordsA = parse(first.lines.value).records
        let recordsB = parse(second.lines.value).records
        #expect(Set(recordsA.compactMap(\.partition)) == assignmentA)
        #expect(Set(recordsB.compactMap(\.partition)) == assignmentB)
        let values = (recordsA + recordsB).compactMap(\.value)
        #expect(values.count == 1_200)
        #expect(Set(values) == Set((0..<1_200).map { "o-\($0)" }))

        first.signal()
        second.signal()
        #expect(try await first.waitForExit() == 0)
        #expect(try await second.waitForExit() == 0)
        broker.signal(SIGINT)
        #expect(try await broker.waitForExit() == 0)
    }

    @Test("Bad arguments are refused with a message naming them", arguments: [
        (["broker", "--topic", "orders:0"], "--topic"),
        (["broker", "--brokers", "0"], "--brokers"),
        (["consume", "--bootstrap-servers", "127.0.0.1:1", "--group", "g", "--topic", "t", "-X", "nonsense"], "-X nonsense"),
        (["consume", "--bootstrap-servers", "127.0.0.1:1", "--group", "g", "--topic", "t", "-X", "no.such=1"], "no.such"),
        (["produce", "--bootstrap-servers", "127.0.0.1:1", "--topic", "t", "--value-size", "-1"], "--value-size"),
    ])
    func badArguments(arguments: [String], named: String) async throws {
        let process = try ChildProcess(arguments)
        let status = try await process.waitForExit()
        #expect(status != 0)
        #expect(process.standardError.contains(named), "stderr: \(process.standardError)")
    }

    @Test("An unreachable broker is reported within the connect timeout")
    func unreachableBroker() async throws {
        let process = try ChildProcess([
            "consume", "--bootstrap-servers", "127.0.0.1:1", "--group", "g", "--topic", "t", "--connect-timeout", "1",
        ])
        let status = try await process.waitForExit(timeout: .seconds(15))
        #expect(status != 0)
        #expect(process.standardError.contains("127.0.0.1:1"), "stderr: \(process.standardError)")
    }
}

@Suite("`conveyor bench`")
struct BenchProcessTests {
    @Test("A small benchmark run consumes everything with every consumer and prints the ratios")
    func smallRun() async throws {
        let bench = try ChildProcess([
            "bench", "--records", "20000", "--partitions", "4", "--rounds", "1", "--io-records", "2000",
            "--log-level", "warning",
        ])
        #expect(try await bench.waitForExit(timeout: .seconds(120)) == 0, "\(bench.standardError)")
        let output = bench.lines.value
        #expect(output.contains { $0.hasPrefix("round 1  raw") })
        #expect(output.contains { $0.hasPrefix("round 1  conveyor") })
        #expect(output.contains { $0.hasPrefix("ratio conveyor/raw:") })
        #expect(output.contains { $0.hasPrefix("ratio runtime-noop/raw:") })
        #expect(output.contains { $0.hasPrefix("W2 runtime-io") })
    }
}

@Suite("`conveyor dev`")
struct DevProcessTests {
    @Test("dev runs the example store against a `conveyor broker` and stops cleanly")
    func devAgainstExternalBroker() async throws {
        let broker = try ChildProcess(["broker", "--log-level", "warning"])
        let bootstrap = try #require(try await broker.lines.wait(for: "the bootstrap line") { !$0.isEmpty }.first)
        let dev = try ChildProcess([
            "dev", "--bootstrap-servers", bootstrap, "--duration", "8", "--rate", "100", "--every", "1",
        ])
        #expect(try await dev.waitForExit(timeout: .seconds(60)) == 0, "\(dev.standardError)")
        let output = dev.lines.value
        let final = try #require(output.firstIndex { $0.hasPrefix("final:") })
        let handlers = output[(final + 1)...].prefix(4)
        #expect(handlers.count == 4)
        for line in handlers {
            let handled = line.split(separator: " ").drop { $0 != "handled" }.dropFirst().first.flatMap { Int($0) }
            #expect((handled ?? 0) > 100, "\(line)")
        }
        #expect(output.contains { $0.hasPrefix("order-stats, top customers") })
        // The read model, written with each order's key completion, counts every order handled, once.
        let counted = output.first { $0.hasPrefix("order-stats: ") }.flatMap { $0.split(separator: " ").dropFirst().first }
            .flatMap { Int($0) }
        let statsLine = try #require(handlers.first { $0.contains("order-stats") })
        let statsHandled = statsLine.split(separator: " ").drop { $0 != "handled" }.dropFirst().first.flatMap { Int($0) }
        #expect(counted != nil && counted == statsHandled, "read model \(String(describing: counted)), handled \(statsLine)")
        broker.signal()
        #expect(try await broker.waitForExit() == 0)
    }
}
