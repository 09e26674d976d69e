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
