// What keeps a run directory safe: one trainer at a time (an flock on `.lock`), stale
// checkpoint temp files from killed writers removed, an event log opened for append whose
// write errors are reported instead of crashing, and a fingerprint of the data a run trains on.

import Foundation
import Runtime
#if canImport(Glibc)
import Glibc
#endif

/// Creates `path` and its parents (like mkdir -p); errors name the directory and the reason
/// ("Read-only file system"), not an NSError dump.
func makeRunDirectory(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") where !part.isEmpty {
        prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw TrainError("\(path): cannot create the run directory: \(String(cString: strerror(errno)))")
        }
    }
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw TrainError("\(path): not a directory") }
}

/// An exclusive lock on a run directory, held until `release()` (or the process ends).
final class RunLock {
    private var fd: Int32
    let path: String

    /// Takes the lock or throws naming the directory (and the holder's pid when it wrote one).
    init(directory: String) throws {
        path = directory + "/.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw TrainError("\(path): cannot create the run lock: \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            close(fd)
            fd = -1
            if e == EWOULDBLOCK {
                throw TrainError("\(directory) is in use by another fergc train\(holder.isEmpty ? "" : " (pid \(holder))"); wait for it to finish, or use another --out")
            }
            throw TrainError("\(path): cannot lock the run directory: \(String(cString: strerror(e)))")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
    }

    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }
    deinit { release() }
}

/// Removes checkpoint temp files (`.checkpoint-*.tmp-*`) left by writers that were killed;
/// called with the run lock held, so no live writer owns one. Returns the names removed.
@discardableResult
func removeStaleCheckpointTemps(in directory: String) -> [String] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    var removed: [String] = []
    for name in names where name.hasPrefix(".checkpoint-") && name.contains(".tmp-") {
        if unlink(directory + "/" + name) == 0 { removed.append(name) }
    }
    return removed
}

/// Appends JSON lines to a file opened with O_APPEND (concurrent writers cannot overwrite each
/// other's lines). A failed write (disk full, EIO) is reported once on stderr and the log is
/// abandoned; the training, whose checkpoints are what matter, goes on.
final class EventLog {
    private var fd: Int32
    let path: String
    private(set) var failure: String?

    /// A disabled log (a data-parallel rank other than 0) writes nothing.
    init(path: String, enabled: Bool = true) throws {
        self.path = path
        guard enabled else { fd = -1; return }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw TrainError("\(path): cannot open the event log for writing: \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFCHR else {
            close(fd)
            throw TrainError("\(path): the event log is not a regular file")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    }
    deinit { if fd >= 0 { close(fd) } }

    func write(_ event: [String: Any]) {
        guard fd >= 0 else { return }
        var e = event
        e["time"] = ISO8601DateFormatter().string(from: Date())
        guard let data = try? JSONSerialization.data(withJSONObject: e, options: [.sortedKeys]) else { return }
        let line = [UInt8](data) + [10]
        // One write() per line: with O_APPEND each line lands whole at the end of the file.
        let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n != line.count {
            let reason = n < 0 ? String(cString: strerror(errno)) : "short write (\(n) of \(line.count) bytes)"
            failure = reason
            FileHandle.standardError.write(Data("warning: \(path): \(reason); the event log stops here, training goes on\n".utf8))
            close(fd)
            fd = -1
        }
    }
}

/// What a run's checkpoint remembers of its data, so a resume on other data is refused.
public struct DataFingerprint: Codable, Sendable, Equatable {
    /// The data file as given (or the embedded sample's path).
    public var source: String
    public var trainImages: Int
    public var valImages: Int
    /// FNV-1a over the labels and every pixel of both splits, in hexadecimal.
    public var hash: String
    /// The splits trained on when not Training alone (`TrainOptions.trainSplits`; absent:
    /// Training, as in checkpoints written before it was recorded).
    public var trainSplits: [String]? = nil

    public init(source: String, train: FaceSet, val: FaceSet, trainSplits: [String]? = nil) {
        self.source = source
        self.trainSplits = trainSplits
        trainImages = train.count
        valImages = val.count
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for set in [train, val] {
            for bytes in [set.labels, set.pixels] {
                bytes.withUnsafeBufferPointer { p in
                    for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
                }
            }
        }
        hash = String(h, radix: 16)
    }
}
