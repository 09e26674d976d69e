// Crash-safe file replacement, shared by everything that writes files users keep (plans,
// checkpoints, .npz dumps): a good file is never replaced by a partial one.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    public var path: String
    /// What failed, without the path.
    public var what: String
    public var description: String { "\(path): \(what)" }
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Atomically replaces `path` with `bytes`: writes a new temp file (`.<name>.tmp-<pid>-<random>`,
/// created exclusively) in the same directory, fsyncs it, renames it over `path`, then fsyncs
/// the directory. On failure the temp file is removed and any existing file at `path` is left
/// untouched. An existing file's mode is kept (new files get 0644 minus umask). A symlink at
/// `path` is followed (its target is replaced); anything else that is not a regular file is refused.
public func writeFileAtomically(_ bytes: [UInt8], to requestedPath: String) throws(FileWriteError) {
    func fail(_ what: String) -> FileWriteError { FileWriteError(path: requestedPath, what: what) }
    // A symlink is written through (its target is replaced, the link stays); an existing
    // device node, FIFO, socket or directory is refused rather than replaced by a regular file.
    var path = requestedPath
    for _ in 0..<40 {
        var lst = stat()
        guard lstat(path, &lst) == 0, (lst.st_mode & S_IFMT) == S_IFLNK else { break }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { throw fail("cannot read the symbolic link: \(errnoText())") }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix("/") {
            path = target
        } else if let slash = path.lastIndex(of: "/") {
            path = String(path[...slash]) + target
        } else {
            path = target
        }
    }
    var existing = stat()
    if lstat(path, &existing) == 0 {
        switch existing.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFLNK: throw fail("too many levels of symbolic links")
        case S_IFDIR: throw fail("is a directory; give a file path")
        case S_IFCHR, S_IFBLK: throw fail("is a device node; fergc only replaces regular files")
        case S_IFIFO: throw fail("is a FIFO (named pipe); fergc only replaces regular files")
        default: throw fail("is not a regular file; fergc only replaces regular files")
        }
    }
    let slash = path.lastIndex(of: "/")
    let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
    guard !base.isEmpty, base != ".", base != ".." else { throw fail("not a file path") }
    let tmp = (slash.map { String(path[...$0]) } ?? "") + ".\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    var mode: mode_t = 0o644
    var st = stat()
    if stat(path, &st) == 0 { mode = st.st_mode & 0o7777 }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw fail("cannot create temp file \(tmp): \(errnoText())") }
    func abandon(_ what: String) -> FileWriteError {
        let e = fail("\(what): \(errnoText())")
        unlink(tmp)
        return e
    }
    var written = 0
    let writeErrno: Int32 = bytes.withUnsafeBytes { buf in
        while written < buf.count, let p = buf.baseAddress {
            let n = write(fd, p + written, buf.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            written += n
        }
        return 0
    }
    if writeErrno != 0 { close(fd); errno = writeErrno; throw abandon("write to \(tmp) failed after \(written) of \(bytes.count) bytes") }
    if fsync(fd) != 0 { let e = errno; close(fd); errno = e; throw abandon("fsync of \(tmp) failed") }
    if close(fd) != 0 { throw abandon("close of \(tmp) failed") }
    if rename(tmp, path) != 0 { throw abandon("rename \(tmp) -> \(path) failed") }
    // Make the rename durable; some filesystems cannot fsync a directory (EINVAL), which is fine.
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        let rc = fsync(dfd), e = errno
        close(dfd)
        if rc != 0 && e != EINVAL && e != ENOTSUP { errno = e; throw fail("fsync of directory \(dir) failed: \(errnoText())") }
    }
}
