// Opening input files without blocking: every path a user or an embedder hands us is opened
// with O_NONBLOCK first, so a FIFO (or a device that blocks on open) cannot hang the process,
// then fstat'ed, and anything but a regular file is refused before a byte is read.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an input file could not be opened; `what` does not repeat the path.
public struct FileOpenError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var what: String
    public var description: String { "\(path): \(what)" }
}

/// What a non-regular file is, for messages ("a FIFO", "a directory", ...).
func fileKindName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO (named pipe)"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    default: return "not a regular file"
    }
}

/// Opens `path` read-only without blocking and returns the descriptor (blocking mode restored,
/// close-on-exec) and the file's size. Refuses anything that is not a regular file.
public func openRegularFile(_ path: String) throws(FileOpenError) -> (fd: Int32, size: Int) {
    func fail(_ what: String) -> FileOpenError { FileOpenError(path: path, what: what) }
    guard !path.isEmpty else { throw fail("empty path") }
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
    guard fd >= 0 else { throw fail("cannot open: \(String(cString: strerror(errno)))") }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
        let e = errno
        close(fd)
        throw fail("cannot stat: \(String(cString: strerror(e)))")
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        close(fd)
        throw fail("\(fileKindName(st.st_mode)), not a regular file")
    }
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
    return (fd, Int(st.st_size))
}

/// Reads a whole regular file (see `openRegularFile`); `limit` bounds its size in bytes. Whatever
/// the limit, a file larger than this process may allocate (`memoryLimit()`: a sparse file says
/// 100 GB in a few blocks of disk) is refused before its buffer is reserved, not aborted on.
public func readRegularFile(_ path: String, limit: Int = Int.max) throws(FileOpenError) -> [UInt8] {
    let (fd, size) = try openRegularFile(path)
    defer { close(fd) }
    guard size <= limit else {
        throw FileOpenError(path: path, what: "the file has \(size) bytes, more than the \(limit) allowed")
    }
    let memory = memoryLimit()
    guard size <= memory.bytes else {
        throw FileOpenError(path: path, what: "the file has \(size) bytes, more than this process may allocate: \(memory)")
    }
    let limit = min(limit, memory.bytes)
    var out = [UInt8]()
    out.reserveCapacity(size)
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileOpenError(path: path, what: "read failed: \(String(cString: strerror(errno)))")
        }
        if n == 0 { return out }
        guard out.count + n <= limit else {
            throw FileOpenError(path: path, what: "the file grew past the \(limit) bytes allowed while being read")
        }
        out += chunk[0..<n]
    }
}

/// The first `count` bytes of a regular file (fewer if it is shorter), opened as
/// `openRegularFile` does: enough to tell a file's kind by its magic without reading it whole.
public func readRegularFilePrefix(_ path: String, count: Int) throws(FileOpenError) -> [UInt8] {
    let (fd, _) = try openRegularFile(path)
    defer { close(fd) }
    var out = [UInt8](repeating: 0, count: max(count, 0))
    var filled = 0
    while filled < out.count {
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileOpenError(path: path, what: "read failed: \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        filled += n
    }
    return Array(out[0..<filled])
}

/// The largest batch a plan may be compiled, loaded or trained for (the .plan format's limit);
/// every batch from a flag or a file is checked against it before anything is sized by it.
public let maxPlanBatch = PlanFormat.maxBatchLimit
