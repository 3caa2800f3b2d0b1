#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// How often each record was running when a process died, from the journals in one directory
/// (``CrashJournal``), shared by every process that uses the directory.
///
/// The counts live in the file `crash-counts` of the journal directory (a line `count handler topic partition
/// offset` per record, tab-separated), updated under a lock file by whichever process finds a dead journal. Every
/// process on the host that shares the directory sees them, so a partition taken over by another process still
/// knows its records' crashes. Processes on other hosts see them only if the directory is shared.
final class CrashCounts: Sendable {
    let directory: String
    /// The counts by handler, and the modification time of the counts file they were read from.
    private let counts = Mutex<(byHandler: [String: [CrashJournal.Entry: Int]], loaded: Date?)>(([:], nil))

    init(directory: String) {
        self.directory = directory
    }

    /// Counts the records of dead processes' journals (deleting the journals), then reloads the counts if the
    /// file changed since they were last read. Returns the records newly counted.
    @discardableResult
    func recover() -> [CrashJournal.Entry] {
        try? FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        let lock = open(self.directory + "/crash-counts.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { return [] }
        defer { close(lock) }
        flock(lock, LOCK_EX)
        defer { flock(lock, LOCK_UN) }
        let crashed = CrashJournal.collectDead(in: self.directory)
        if !crashed.isEmpty {
            var counts = self.load()
            for entry in crashed {
                counts[entry, default: 0] += 1
            }
            self.save(counts)
        }
        // Most calls find nothing new: the file is read again only when some process wrote it.
        let modified = (try? FileManager.default.attributesOfItem(atPath: self.file))?[.modificationDate] as? Date
        guard !crashed.isEmpty || modified != self.counts.withLock({ $0.loaded }) else { return crashed }
        let counts = Dictionary(grouping: self.load(), by: \.key.handler).mapValues { Dictionary(uniqueKeysWithValues: $0) }
        self.counts.withLock { $0 = (counts, modified) }
        return crashed
    }

    /// The counts of `handler`'s records, for a lane run to consult without a lock per record.
    func snapshot(handler: String) -> [CrashJournal.Entry: Int] {
        self.counts.withLock { $0.byHandler[handler] ?? [:] }
    }

    private var file: String { self.directory + "/crash-counts" }

    private func load() -> [CrashJournal.Entry: Int] {
        guard let text = try? String(contentsOfFile: self.file, encoding: .utf8) else { return [:] }
        var counts: [CrashJournal.Entry: Int] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 5, let count = Int(fields[0]), let partition = Int32(fields[3]),
                let offset = Int64(fields[4])
            else { continue }
            counts[CrashJournal.Entry(handler: String(fields[1]), topic: String(fields[2]), partition: partition, offset: offset)] = count
        }
        return counts
    }

    private func save(_ counts: [CrashJournal.Entry: Int]) {
        let text = counts.map { "\($0.value)\t\($0.key.handler)\t\($0.key.topic)\t\($0.key.partition)\t\($0.key.offset)\n" }
            .joined()
        try? text.write(toFile: self.file, atomically: true, encoding: .utf8)
    }
}
