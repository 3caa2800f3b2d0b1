#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemWrite = Glibc.write
#else
private let systemWrite = Darwin.write
#endif

/// Unbuffered writes to standard output, so that a reading process sees each line as soon as it is written.
enum StandardOutput {
    /// Writes `text` completely (retrying short writes and interrupted calls).
    static func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                systemWrite(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                guard errno == EINTR else { return }
                continue
            }
            offset += written
        }
    }
}
