// POSIX file helpers: whole-file read and crash-safe atomic replace.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

private func errnoText() -> String { String(cString: strerror(errno)) }

/// Atomically replaces `path` with `bytes`: writes a temp file `.<name>.tmp-<pid>` in the same
/// directory, fsyncs it, renames it over `path`, then fsyncs the directory. On failure the temp
/// file is removed and any existing file at `path` is left untouched. The file mode of an existing
/// file is preserved (new files get 0644 minus umask).
public func atomicWrite(_ bytes: [UInt8], to path: String) throws(NumPyError) {
    let slash = path.lastIndex(of: "/")
    let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
    guard !base.isEmpty, base != ".", base != ".." else { throw NumPyError("\(path): not a file path") }
    let tmp = (slash.map { String(path[...$0]) } ?? "") + ".\(base).tmp-\(getpid())"

    var mode: mode_t = 0o644
    var st = stat()
    if stat(path, &st) == 0 { mode = st.st_mode & 0o7777 }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw NumPyError("\(path): cannot create temp file \(tmp): \(errnoText())") }
    func abandon(_ what: String) -> NumPyError {
        let err = NumPyError("\(path): \(what): \(errnoText())")
        unlink(tmp)
        return err
    }
    var written = 0
    let writeError: Int32 = bytes.withUnsafeBytes { buf in
        while written < buf.count, let base = buf.baseAddress {
            let n = write(fd, base + written, buf.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            written += n
        }
        return 0
    }
    if writeError != 0 {
        close(fd)
        errno = writeError
        throw abandon("write to \(tmp) failed after \(written) of \(bytes.count) bytes")
    }
    if fsync(fd) != 0 { let e = errno; close(fd); errno = e; throw abandon("fsync of \(tmp) failed") }
    if close(fd) != 0 { throw abandon("close of \(tmp) failed") }
    if rename(tmp, path) != 0 { throw abandon("rename \(tmp) -> \(path) failed") }
    // Make the rename durable. Some filesystems cannot fsync directories (EINVAL); that is not an error.
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        let rc = fsync(dfd), e = errno
        close(dfd)
        if rc != 0 && e != EINVAL && e != ENOTSUP {
            errno = e
            throw NumPyError("\(path): fsync of directory \(dir) failed: \(errnoText())")
        }
    }
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
