// POSIX file helpers: whole-file read and crash-safe atomic replace.

import Runtime
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

private func errnoText() -> String { String(cString: strerror(errno)) }

/// Atomically replaces `path` with `bytes` (the runtime's `writeFileAtomically`: temp file,
/// fsync, rename, fsync of the directory); a failure leaves any existing file untouched.
public func atomicWrite(_ bytes: [UInt8], to path: String) throws(NumPyError) {
    do { try writeFileAtomically(bytes, to: path) } catch { throw NumPyError(error.description) }
}

extension NumPyIO {
    /// Reads a whole file.
    static func readFile(_ path: String) throws(NumPyError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NumPyError("\(path): cannot open: \(errnoText())") }
        defer { close(fd) }
        var out = [UInt8]()
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size > 0 { out.reserveCapacity(Int(st.st_size)) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw NumPyError("\(path): read failed: \(errnoText())")
            }
            if n == 0 { return out }
            out += chunk[0..<n]
        }
    }
}
