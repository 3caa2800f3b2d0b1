import GRDB
internal import GRDBSQLite

/// The values of one multi-row statement of ``SQLiteKeyWriter``, bound straight to GRDB's prepared SQLite statement
/// and run there.
///
/// GRDB's `StatementArguments` box every value as a `DatabaseValue` and bind them one by one; for statements of up
/// to 64 rows that was about a fifth of the store's writer thread (perf). Here the strings of all rows go into one
/// byte buffer and SQLite reads them from it in place (`SQLITE_STATIC`) while the statement runs; the bindings are
/// cleared before the buffer goes away. This is the one file that calls SQLite's C API itself; GRDB owns the
/// connection and the prepared statement, but does not see these runs of it: GRDB's transaction observers and
/// database-region tracking miss them (the store registers none).
struct SQLiteRowValues {
    private enum Value {
        case text(start: Int, count: Int)
        case real(Double)
    }

    /// The UTF-8 of every text value, one after the other (never empty: SQLite binds a null pointer as NULL).
    private var bytes: [UInt8] = [0]
    private var values: [Value] = []

    /// Room for `count` values, about `textBytes` bytes of text among them.
    init(capacity count: Int, textBytes: Int) {
        self.values.reserveCapacity(count)
        self.bytes.reserveCapacity(textBytes + 1)
    }

    /// Appends a text value, bound to the next parameter (`?1`, `?2`, ... in order).
    mutating func append(_ text: String) {
        let start = self.bytes.count
        self.bytes.append(contentsOf: text.utf8)
        self.values.append(.text(start: start, count: self.bytes.count - start))
    }

    /// Appends a real value, bound to the next parameter.
    mutating func append(_ real: Double) {
        self.values.append(.real(real))
    }

    /// Binds the values to `statement`'s parameters in order and runs it to its end in `db`.
    ///
    /// - Throws: GRDB's `DatabaseError` for a failed binding or step (a constraint, a full disk, a busy database).
    func execute(_ statement: Statement, in db: Database) throws {
        let handle = statement.sqliteStatement
        try self.bytes.withUnsafeBufferPointer { buffer in
            // The buffer is only valid in this closure: SQLite must not keep a pointer into it.
            defer {
                sqlite3_reset(handle)
                sqlite3_clear_bindings(handle)
            }
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            for (offset, value) in self.values.enumerated() {
                let index = Int32(offset + 1)
                let code =
                    switch value {
                    case .text(let start, let count): sqlite3_bind_text(handle, index, base + start, Int32(count), nil)
                    case .real(let real): sqlite3_bind_double(handle, index, real)
                    }
                guard code == SQLITE_OK else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage, sql: statement.sql)
                }
            }
            let code = sqlite3_step(handle)
            guard code == SQLITE_DONE else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage, sql: statement.sql)
            }
        }
    }
}
