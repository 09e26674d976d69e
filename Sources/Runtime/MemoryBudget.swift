// What an executor will allocate for a validated plan, computed with checked arithmetic so
// that a hostile or absurd plan is refused before the allocator aborts the process.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes an `Executor` allocates for `plan` (arena, unplanned buffers at maxBatch, workspace),
/// with elements of `elementSize` bytes; Int.max when the sum overflows.
public func executorBytes(_ plan: Plan, elementSize: Int) -> Int {
    let scale = max(elementSize / 4, 1)
    var total = 0
    func add(_ bytes: Int) {
        let (t, o) = total.addingReportingOverflow(bytes)
        total = o ? Int.max : t
    }
    func times(_ a: Int, _ b: Int) -> Int {
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o ? Int.max : p
    }
    let planned = plan.buffers.contains { $0.offset != nil }
    if planned, let memory = plan.memory { add(times(memory.arenaBytes, scale)) }
    for b in plan.buffers where !(planned && b.offset != nil && plan.memory != nil) {
        // Parameters and optimizer state are not batched: one copy, whatever the batch.
        var elements = b.batched ? times(plan.maxBatch, max(b.views ?? 1, 1)) : 1
        for d in b.perSample { elements = times(elements, max(d, 0)) }
        add(times(max(elements, 1), b.elementType == .f32 ? elementSize : 4))
    }
    add(times(workspaceElements(plan), elementSize))
    return total
}

/// The machine's physical memory in bytes (Int.max when unknown).
public func physicalMemoryBytes() -> Int {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
    guard pages > 0, size > 0 else { return Int.max }
    let (p, o) = pages.multipliedReportingOverflow(by: size)
    return o ? Int.max : p
}

/// The most this process may allocate, and what sets it: the least of the machine's physical
/// memory, what is left of the address-space limit (`ulimit -v`, where an allocation past it
/// fails and Swift aborts), and the memory limit of the process's control group (a container's,
/// where the kernel kills the process past it). Read at each call: a check made before an
/// allocation that size-checks a file's request compares against this, not the machine alone.
public struct MemoryLimit: Sendable, Equatable, CustomStringConvertible {
    public var bytes: Int
    /// What sets the limit, for a message: "this machine's N bytes of memory", ...
    public var description: String
}

public func memoryLimit() -> MemoryLimit {
    let physical = physicalMemoryBytes()
    var limit = MemoryLimit(bytes: physical, description: "this machine's \(physical) bytes of memory")
    if let cgroup = controlGroupMemoryLimit(), cgroup < limit.bytes {
        limit = MemoryLimit(bytes: cgroup, description: "the \(cgroup) bytes its control group allows (a container's memory limit)")
    }
    if let space = addressSpaceLimit() {
        // What is left, less a reserve for what the libraries map on their own once work starts
        // (OpenBLAS takes 128 MB buffers as its products need them and, refused one, spins in
        // its allocator instead of failing).
        let left = max(space.limit - min(space.used, space.limit) - addressSpaceReserve, 0)
        if left < limit.bytes {
            limit = MemoryLimit(bytes: left, description: "the \(left) bytes left of the address-space limit of \(space.limit) bytes (ulimit -v), less \(addressSpaceReserve >> 20) MB kept for the libraries' own buffers")
        }
    }
    return limit
}

/// Address space kept free under `ulimit -v` for the libraries' own buffers.
let addressSpaceReserve = 768 << 20

/// RLIMIT_AS's soft limit and the address space in use (/proc/self/statm), when limited.
private func addressSpaceLimit() -> (limit: Int, used: Int)? {
    var r = rlimit()
    #if canImport(Glibc)
    guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &r) == 0 else { return nil }
    #else
    guard getrlimit(RLIMIT_AS, &r) == 0 else { return nil }
    #endif
    // RLIM_INFINITY is all ones on Linux and Int64.max on Darwin: both mean no limit.
    guard r.rlim_cur < rlim_t(Int.max) else { return nil }
    var used = 0
    if let statm = readSmallFile("/proc/self/statm"),
       let pages = Int(statm.split(separator: " ").first ?? "") {
        let size = sysconf(Int32(_SC_PAGESIZE))
        let (u, o) = pages.multipliedReportingOverflow(by: max(size, 1))
        used = o ? Int.max : u
    }
    return (Int(r.rlim_cur), used)
}

/// The memory limit of this process's control group (v2 memory.max, v1 memory.limit_in_bytes),
/// when there is one; nil for "max", no such file, or no limit at all.
private func controlGroupMemoryLimit() -> Int? {
    guard let groups = readSmallFile("/proc/self/cgroup") else { return nil }
    var candidates: [String] = []
    for line in groups.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { continue }
        let path = parts[2] == "/" ? "" : String(parts[2])
        if parts[0] == "0" && parts[1].isEmpty {
            candidates += ["/sys/fs/cgroup\(path)/memory.max", "/sys/fs/cgroup/memory.max"]
        } else if parts[1].split(separator: ",").contains("memory") {
            candidates += ["/sys/fs/cgroup/memory\(path)/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        }
    }
    for file in candidates {
        guard let text = readSmallFile(file) else { continue }
        let value = text.split(separator: "\n").first.map(String.init) ?? ""
        if value == "max" { return nil }
        // cgroup v1 writes "no limit" as a number near Int64.max, rounded to pages.
        if let bytes = Int(value), bytes > 0, bytes < Int.max / 2 { return bytes }
        if Int(value) != nil { return nil }
    }
    return nil
}

/// The first 4 KB of a small system file (a /proc or /sys entry) as text, or nil when it cannot
/// be read or is empty. Not `readRegularFile`: /proc's entries report a size of 0.
private func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 4096)
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    return String(decoding: bytes[0..<n], as: UTF8.self)
}
