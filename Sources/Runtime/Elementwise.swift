import CKernels

// Elementwise and data-movement kernels: add, mul, copy, concat, slice, scale, the L2 penalty,
// constants and dropout. `count` is the total number of elements (batch included). add, mul,
// copy, scale and dropout may run in place (y aliasing an input).

/// y = x1 + x2 + ... (at least one input).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func addForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,               // (count)
    _ xs: UnsafeBufferPointer<UnsafePointer<T>>, // k x (count)
    count: Int
) {
    let first = xs[0]
    for i in 0..<count {
        var sum = first[i]
        for j in 1..<xs.count { sum += xs[j][i] }
        y[i] = sum
    }
}

/// y = x1 * x2 * ... elementwise (at least one input).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func mulForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,               // (count)
    _ xs: UnsafeBufferPointer<UnsafePointer<T>>, // k x (count)
    count: Int
) {
    let first = xs[0]
    for i in 0..<count {
        var product = first[i]
        for j in 1..<xs.count { product *= xs[j][i] }
        y[i] = product
    }
}

/// y = x (flatten, reshape).
public func copyForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (count)
    _ x: UnsafePointer<T>,          // (count)
    count: Int
) {
    if UnsafePointer(y) != x { y.update(from: x, count: count) }
}

/// y = factor * x.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func scaleForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (count)
    _ x: UnsafePointer<T>,          // (count)
    count: Int, factor: T
) {
    for i in 0..<count { y[i] = x[i] * factor }
}

/// Per sample, input j is [outer, sizes[j] * inner]; y is [outer, sum(sizes) * inner] with the
/// inputs side by side along the middle axis.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func concatForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,               // (N, outer, total * inner)
    _ xs: UnsafeBufferPointer<UnsafePointer<T>>, // j: (N, outer, sizes[j] * inner)
    n: Int, outer: Int, inner: Int, sizes: [Int]
) {
    let total = sizes.reduce(0, +)
    for s in 0..<n {
        for o in 0..<outer {
            var dst = y + (s * outer + o) * total * inner
            for j in 0..<xs.count {
                let chunk = sizes[j] * inner
                dst.update(from: xs[j] + (s * outer + o) * chunk, count: chunk)
                dst += chunk
            }
        }
    }
}

/// Per sample, x is [outer, total * inner] and y = x[:, start*inner ..< (start+length)*inner].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func sliceForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, outer, length * inner)
    _ x: UnsafePointer<T>,          // (N, outer, total * inner)
    n: Int, outer: Int, inner: Int, total: Int, start: Int, length: Int
) {
    for s in 0..<n {
        for o in 0..<outer {
            let src = x + ((s * outer + o) * total + start) * inner
            (y + (s * outer + o) * length * inner).update(from: src, count: length * inner)
        }
    }
}

/// Elements per block of the L2 penalty's sum: each block's sum of squares (`fk_sumsq` for
/// Float) is computed on its own and the blocks added in order, so the result does not depend
/// on how many threads share the blocks.
let l2PenaltyBlock = 1 << 16

/// y = factor * sum(w^2), accumulated in Double (blocks of `l2PenaltyBlock`, the threads
/// splitting the blocks; the same bits for any thread count).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func l2PenaltyForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (1)
    _ w: UnsafePointer<T>,          // (count)
    count: Int, factor: T, threads: Int = 1
) {
    let blocks = (count + l2PenaltyBlock - 1) / l2PenaltyBlock
    var sums = [Double](repeating: 0, count: blocks)
    sums.withUnsafeMutableBufferPointer { sums in
        let parts = max(1, min(threads, blocks))
        parallelFor(parts) { part in
            for b in splitRange(blocks, parts: parts, part) {
                sums[b] = sumOfSquares(w + b * l2PenaltyBlock, count: min(l2PenaltyBlock, count - b * l2PenaltyBlock))
            }
        }
    }
    y[0] = T(Double(factor) * sums.reduce(0, +))
}

/// The sum of squares of `count` values in Double: `fk_sumsq` for Float (eight lanes, the
/// same bits on every CPU), the same lanes in Swift for Double.
@inline(__always)
func sumOfSquares<T: BLASReal>(_ x: UnsafePointer<T>, count: Int) -> Double {
    if T.self == Float.self {
        return x.withMemoryRebound(to: Float.self, capacity: count) { fk_sumsq($0, count) }
    }
    var lane = SIMD8<Double>()
    for i in 0..<count { let v = Double(x[i]); lane[i % 8] += v * v }
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]))
}

/// dw = 2 * factor * dloss * w, the gradient of `l2PenaltyForward` (elementwise: any split
/// over the threads gives the same bits).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func l2PenaltyBackward<T: BLASReal>(
    _ dw: UnsafeMutablePointer<T>,  // (count)
    _ dloss: UnsafePointer<T>,      // (1)
    _ w: UnsafePointer<T>,          // (count)
    count: Int, factor: T, threads: Int = 1
) {
    let k = 2 * factor * dloss[0]
    let parts = count >= 1 << 16 ? max(1, threads) : 1
    parallelFor(parts) { part in
        let r = splitRange(count, parts: parts, part)
        if T.self == Float.self {
            dw.withMemoryRebound(to: Float.self, capacity: count) { d in
                w.withMemoryRebound(to: Float.self, capacity: count) { x in
                    fk_scale(d + r.lowerBound, x + r.lowerBound, unsafeBitCast(k, to: Float.self), r.count)
                }
            }
        } else {
            for i in r { dw[i] = k * w[i] }
        }
    }
}

/// y = value everywhere.
public func constantForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (count)
    count: Int, value: T
) {
    y.update(repeating: value, count: count)
}

// MARK: - Dropout

/// splitmix64's finalizer: a bijective 64-bit mix.
@inline(__always)
func splitmix64Mix(_ z0: UInt64) -> UInt64 {
    var z = z0
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// The counter-based hash behind dropout: a pure function of (seed, run, step, index), so a
/// mask does not depend on evaluation order or threading. Each field is folded in with a
/// golden-ratio increment and a splitmix64 mix.
@inline(__always)
public func counterHash(seed: UInt64, run: UInt64, step: UInt64, index: UInt64) -> UInt64 {
    let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
    var h = splitmix64Mix(seed &+ golden)
    h = splitmix64Mix(h ^ (run &+ 2 &* golden))
    h = splitmix64Mix(h ^ (step &+ 3 &* golden))
    return splitmix64Mix(h ^ (index &+ 4 &* golden))
}

/// Training dropout (inverted): element i is kept when u_i >= rate, u_i uniform in [0, 1) from
/// `counterHash(seed, run, step, i)`; mask = 1/(1-rate) if kept else 0 and y = x * mask.
/// `rate` must be in [0, 1). `i` counts over the whole batch (sample-major).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func dropoutForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (count)
    _ mask: UnsafeMutablePointer<T>, // (count)
    _ x: UnsafePointer<T>,          // (count)
    count: Int, rate: Double, seed: UInt64, run: UInt64, step: UInt64,
    first: UInt64 = 0  // the index of element 0 in the whole batch (data parallelism)
) {
    let keepValue = T(1 / (1 - rate))
    for i in 0..<count {
        let h = counterHash(seed: seed, run: run, step: step, index: first &+ UInt64(i))
        let u = Double(h >> 11) * 0x1p-53
        let m: T = u >= rate ? keepValue : 0
        mask[i] = m
        y[i] = x[i] * m
    }
}
