// plan-memory: plan -> plan with arena offsets. Places every intermediate buffer of a plan in
// one arena, reusing memory of values that are dead, and records the memory summary.
//
//   step 0  a = conv2d(x, w)     4 KB      a @0      (x is an input: storage of its own)
//   step 1  b = relu(a)          4 KB ==>  b @0      in place: a dies here, relu is elementwise
//   step 2  c = maxpool(b)       1 KB      c @0      in place: b dies here; c keeps its first
//                                                     KB, the other 3 KB are free after the step
//   step 3  d = dense(c, w2)     4 KB      d @1024   c is read here: d goes above it
//   arena 5 KB (naive 13 KB, -62%)
//
// The algorithm is ggml-alloc's, on the linear step order ("measure, then allocate"):
//   1. Liveness (Runtime/Liveness.swift, shared with the validator and the executor): each
//      intermediate lives from the step that first writes it to the last step that reads it;
//      plan outputs live to the end. Inputs, parameters and state have storage of their own
//      and are only counted.
//   2. Walk the steps. For each value first written at step s: if it is the step's first
//      output and the step may run in place (`inPlaceSource`: an elementwise kernel such as
//      relu, scale, add, mul, dropout's y, relu_grad; a convolution whose output is as large
//      as its input; a pool without padding, whose output is smaller) and the step's first
//      input is an intermediate that dies at s and is not a plan output, take over that
//      input's block (in place). Otherwise take the best-fitting block from a free list sorted
//      by offset (the smallest that fits; the lowest offset among equals), or grow the arena at
//      its top.
//   3. After step s, return the blocks of values that died at s (last use) to the free list,
//      merging them with free neighbours; a free block reaching the top lowers the top. A
//      value handed over in place returns only what its smaller successor does not use.
//   With in-place convolutions and pools, a VGG block at batch 1 needs one block-sized buffer:
//      conv1 -> conv2 (over conv1) -> pool (over conv2's first quarter; the rest is freed).
//   4. The arena size is the highest top reached. Sizes are at `maxBatch`, rounded up to
//      64 bytes (so are offsets).
// The result is a pure function of the plan: same plan, same offsets.

import Runtime

public func planMemory(_ plan: Plan) -> Plan {
    let lifetimes = intermediateLifetimes(plan)
    let size = plan.buffers.map { arenaSize($0, batch: plan.maxBatch) }
    var born = [[Int]](repeating: [], count: max(plan.steps.count, 1))
    var dies = [[Int]](repeating: [], count: max(plan.steps.count, 1))
    for (i, life) in lifetimes.enumerated() {
        guard let life else { continue }
        born[life.lowerBound].append(i)
        dies[life.upperBound].append(i)
    }
    var arena = FreeList()
    var offset = [Int?](repeating: nil, count: plan.buffers.count)
    for s in born.indices {
        // Values live from step 0 without being written (read first) come before outputs.
        let outputs = s < plan.steps.count ? plan.steps[s].outputs : []
        let order = born[s].filter { !outputs.contains($0) } + outputs.filter { born[s].contains($0) }
        let source = s < plan.steps.count ? inPlaceSource(plan, step: s, lifetimes: lifetimes) : nil
        var handedOver: Int? = nil
        for b in order {
            if b == outputs.first, let x = source, let at = offset[x] {
                offset[b] = at
                handedOver = x
            } else {
                offset[b] = arena.allocate(size[b])
            }
        }
        for b in dies[s] {
            if b == handedOver {
                let kept = size[outputs[0]]
                if kept < size[b] { arena.free(offset[b]! + kept, size[b] - kept) }
            } else {
                arena.free(offset[b]!, size[b])
            }
        }
    }
    // Intermediates nothing touches still get an address (over dead memory).
    for (i, b) in plan.buffers.enumerated() where b.role == .intermediate && offset[i] == nil {
        offset[i] = arena.allocate(size[i])
        arena.free(offset[i]!, size[i])
    }

    var out = plan
    for i in out.buffers.indices where out.buffers[i].role == .intermediate {
        out.buffers[i].offset = offset[i]
    }
    out.memory = memorySummary(plan, arenaBytes: arena.peak)
    return out
}

/// The summary for `plan` with the given arena size; the other figures are sums by role.
func memorySummary(_ plan: Plan, arenaBytes: Int) -> MemorySummary {
    func bytes(_ role: BufferRole, aligned: Bool = false) -> Int {
        plan.buffers.filter { $0.role == role }.reduce(0) {
            $0 + (aligned ? arenaSize($1, batch: plan.maxBatch) : $1.byteCount(batch: plan.maxBatch))
        }
    }
    var m = MemorySummary()
    m.arenaBytes = arenaBytes
    m.naiveBytes = bytes(.intermediate, aligned: true)
    m.parameterBytes = bytes(.parameter)
    m.optimizerBytes = bytes(.state)
    m.workspaceThreads = onlineProcessors()
    m.workspaceBytes = executorWorkspaceBytes(plan, threads: onlineProcessors())
    m.inputBytes = bytes(.input)
    return m
}

/// Free blocks of the arena, sorted by offset and never adjacent (neighbours are merged),
/// below `top`; everything from `top` up is free too.
struct FreeList {
    private(set) var blocks: [(offset: Int, size: Int)] = []
    private(set) var top = 0
    private(set) var peak = 0

    /// Best fit: the smallest free block that holds `size` bytes, else the top.
    mutating func allocate(_ size: Int) -> Int {
        var best: Int? = nil
        for (k, b) in blocks.enumerated() where b.size >= size {
            if best == nil || b.size < blocks[best!].size { best = k }
        }
        if let k = best {
            let at = blocks[k].offset
            if blocks[k].size == size { blocks.remove(at: k) } else {
                blocks[k].offset += size
                blocks[k].size -= size
            }
            return at
        }
        let at = top
        top += size
        peak = max(peak, top)
        return at
    }

    mutating func free(_ offset: Int, _ size: Int) {
        var k = blocks.firstIndex { $0.offset > offset } ?? blocks.count
        blocks.insert((offset, size), at: k)
        if k + 1 < blocks.count, blocks[k].offset + blocks[k].size == blocks[k + 1].offset {
            blocks[k].size += blocks[k + 1].size
            blocks.remove(at: k + 1)
        }
        if k > 0, blocks[k - 1].offset + blocks[k - 1].size == blocks[k].offset {
            blocks[k - 1].size += blocks[k].size
            blocks.remove(at: k)
            k -= 1
        }
        if blocks[k].offset + blocks[k].size == top {
            top = blocks[k].offset
            blocks.remove(at: k)
        }
    }
}

// MARK: - Reporting

/// Arena bytes in use during one step: the union of the memory of the intermediates live at it.
public struct MemoryTimelinePoint: Sendable, Hashable {
    public var step: Int
    public var name: String
    public var liveBytes: Int
}

/// Live arena bytes during each step of a planned plan (for an unplanned one: the bytes its
/// live intermediates would need, without reuse). The maximum is at most `arenaBytes`; the
/// difference is fragmentation.
public func memoryTimeline(_ plan: Plan) -> [MemoryTimelinePoint] {
    let lifetimes = intermediateLifetimes(plan)
    let size = plan.buffers.map { arenaSize($0, batch: plan.maxBatch) }
    return plan.steps.enumerated().map { s, step in
        var ranges: [(Int, Int)] = []
        var unplaced = 0
        for (i, life) in lifetimes.enumerated() where life?.contains(s) == true {
            if let o = plan.buffers[i].offset { ranges.append((o, o + size[i])) } else { unplaced += size[i] }
        }
        ranges.sort { $0.0 < $1.0 }
        var total = unplaced, end = 0
        for (lo, hi) in ranges where hi > end {
            total += hi - max(lo, end)
            end = hi
        }
        return MemoryTimelinePoint(step: s, name: step.name, liveBytes: total)
    }
}

/// "memory: arena 12.3 MB (naive 45.6 MB, -73%), parameters 12.3 MB, optimizer 24.5 MB,
/// workspace 1.3 MB, inputs 1.2 MB, total 51.6 MB (at batch 128)". An unplanned plan is
/// summarized with its naive size as the arena.
public func memoryReport(_ plan: Plan) -> String {
    let m = plan.memory ?? {
        let naive = plan.buffers.filter { $0.role == .intermediate }.reduce(0) { $0 + arenaSize($1, batch: plan.maxBatch) }
        return memorySummary(plan, arenaBytes: naive)
    }()
    let saved = m.naiveBytes > 0 ? Int((100 * (1 - Double(m.arenaBytes) / Double(m.naiveBytes))).rounded()) : 0
    return "memory: arena \(megabytes(m.arenaBytes)) (naive \(megabytes(m.naiveBytes)), -\(saved)%), "
        + "parameters \(megabytes(m.parameterBytes)), optimizer \(megabytes(m.optimizerBytes)), "
        + "workspace \(megabytes(m.workspaceBytes))\(m.workspaceThreads.map { " (\($0) thread\($0 == 1 ? "" : "s"))" } ?? ""), inputs \(megabytes(m.inputBytes)), "
        + "total \(megabytes(m.totalBytes)) (at batch \(plan.maxBatch))"
}

/// Bytes in decimal units with one decimal: "12.3 MB", or "5.1 KB" below 0.1 MB.
func megabytes(_ bytes: Int) -> String {
    let (unit, scale) = bytes >= 100_000 ? ("MB", 1_000_000.0) : ("KB", 1_000.0)
    let tenths = Int((Double(bytes) / scale * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(unit)"
}
