#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The record each worker lane of this process is running, in a memory-mapped file, so that when the process
/// dies (a Swift trap, a SIGKILL), the next process to look at the journal directory knows which records were
/// running at that moment.
///
/// A lane's slot is written with plain stores before and after each record: no system call on the hot path. The
/// stores reach the file's pages at once, which outlive the process (not the machine: this journal is about
/// process crashes). The file is locked (`flock`) for the process's lifetime; an unlocked journal belongs to a
/// process that died. A clean stop deletes it.
///
/// `@unchecked Sendable`: the mapping is written only through ``prepare(lane:handler:topic:)``,
/// ``start(lane:partition:offset:)`` and ``finish(lane:)``, and each lane's slot only by that lane's worker, which runs one record at a time; nothing in
/// this process reads the mapping. Other processes read it only after this one died.
final class CrashJournal: @unchecked Sendable {
    static let magic = Array("CONVEYOR-JOURNAL-1".utf8)
    static let headerSize = 64
    static let slotSize = 256
    static let handlerCapacity = 62
    static let topicCapacity = 127

    /// A record that was running in a journal's lane.
    struct Entry: Hashable, Sendable {
        var handler: String
        var topic: String
        var partition: Int32
        var offset: Int64
    }

    let path: String
    private let descriptor: Int32
    private let base: UnsafeMutableRawPointer
    private let size: Int
    private let lanes: Int

    /// Creates this process's journal in `directory`, with a slot per lane.
    init(directory: String, lanes: Int) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.path = directory + "/\(UUID().uuidString).journal"
        self.lanes = lanes
        self.size = Self.headerSize + lanes * Self.slotSize
        let descriptor = open(self.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ConveyorError(.configuration, "crash.journal_directory: cannot create \(self.path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0, ftruncate(descriptor, off_t(self.size)) == 0,
            let mapping = mmap(nil, self.size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0),
            mapping != MAP_FAILED
        else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            unlink(self.path)
            throw ConveyorError(.configuration, "crash.journal_directory: cannot map \(self.path): \(reason)")
        }
        self.descriptor = descriptor
        self.base = mapping
        Self.magic.withUnsafeBytes { self.base.copyMemory(from: $0.baseAddress!, byteCount: Self.magic.count) }
        self.base.storeBytes(of: UInt32(lanes), toByteOffset: 32, as: UInt32.self)
    }

    /// Lane `lane` is about to run records of `handler` from `topic` (written once per run of records, not per
    /// record). Leaves the slot idle.
    func prepare(lane: Int, handler: String, topic: String) {
        let slot = self.base + Self.headerSize + (lane % self.lanes) * Self.slotSize
        slot.storeBytes(of: 0, as: UInt8.self)
        Self.write(handler, capacity: Self.handlerCapacity, at: slot + 1)
        Self.write(topic, capacity: Self.topicCapacity, at: slot + 64)
    }

    /// Lane `lane` starts running a record of the handler and topic it was prepared for.
    func start(lane: Int, partition: Int32, offset: Int64) {
        let slot = self.base + Self.headerSize + (lane % self.lanes) * Self.slotSize
        slot.storeBytes(of: partition, toByteOffset: 192, as: Int32.self)
        slot.storeBytes(of: offset, toByteOffset: 200, as: Int64.self)
        slot.storeBytes(of: 1, as: UInt8.self)
    }

    /// Lane `lane` is done with its record.
    func finish(lane: Int) {
        (self.base + Self.headerSize + (lane % self.lanes) * Self.slotSize).storeBytes(of: 0, as: UInt8.self)
    }

    /// Unmaps, unlocks and deletes the journal (a clean stop).
    func remove() {
        munmap(self.base, self.size)
        unlink(self.path)
        close(self.descriptor)
    }

    private static func write(_ text: String, capacity: Int, at pointer: UnsafeMutableRawPointer) {
        var text = text
        text.withUTF8 { bytes in
            let count = min(bytes.count, capacity)
            pointer.storeBytes(of: UInt8(count), as: UInt8.self)
            (pointer + 1).copyMemory(from: bytes.baseAddress!, byteCount: count)
        }
    }

    /// The records that were running in the journals of dead processes in `directory`; those journals are
    /// deleted. A journal is dead when nobody holds its lock.
    static func collectDead(in directory: String) -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var entries: [Entry] = []
        for name in names where name.hasSuffix(".journal") {
            let path = directory + "/" + name
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { continue }
            if let data = FileManager.default.contents(atPath: path) {
                entries += Self.running(in: [UInt8](data))
            }
            unlink(path)
        }
        return entries
    }

    private static func running(in bytes: [UInt8]) -> [Entry] {
        guard bytes.count >= Self.headerSize, Array(bytes.prefix(Self.magic.count)) == Self.magic else { return [] }
        return bytes.withUnsafeBytes { raw -> [Entry] in
            let lanes = Int(raw.loadUnaligned(fromByteOffset: 32, as: UInt32.self))
            var entries: [Entry] = []
            for lane in 0..<lanes {
                let slot = Self.headerSize + lane * Self.slotSize
                guard slot + Self.slotSize <= raw.count, raw[slot] == 1 else { continue }
                func text(_ at: Int) -> String {
                    let count = Int(raw[slot + at])
                    return String(decoding: raw[(slot + at + 1)..<(slot + at + 1 + count)], as: UTF8.self)
                }
                entries.append(Entry(
                    handler: text(1), topic: text(64),
                    partition: raw.loadUnaligned(fromByteOffset: slot + 192, as: Int32.self),
                    offset: raw.loadUnaligned(fromByteOffset: slot + 200, as: Int64.self)
                ))
            }
            return entries
        }
    }
}
