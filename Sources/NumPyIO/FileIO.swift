// POSIX file helpers: whole-file read and crash-safe atomic replace.

#if canImport(Runtime)  // one module with Runtime in the fuzz builds (Tools/fuzz)
import Runtime
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif


/// Atomically replaces `path` with `bytes` (the runtime's `writeFileAtomically`: temp file,
/// fsync, rename, fsync of the directory); a failure leaves any existing file untouched.
public func atomicWrite(_ bytes: [UInt8], to path: String) throws(NumPyError) {
    do { try writeFileAtomically(bytes, to: path) } catch { throw NumPyError(error.description) }
}

extension NumPyIO {
    /// Reads a whole file.
    static func readFile(_ path: String) throws(NumPyError) -> [UInt8] {
        // Opened without blocking and refused unless it is a regular file (a FIFO would hang).
        do { return try readRegularFile(path) } catch { throw NumPyError(error.description) }
    }
}
