// Fast Float paths of memory-bound kernels (the loops are in CKernels); each produces exactly
// what its generic kernel does, and the tests compare them.
import CKernels

/// `dropoutForward` for Float: the per-step part of the counter hash is computed once, the
/// per-element part in C. Bitwise identical masks.
public func fastDropout(
    _ y: UnsafeMutablePointer<Float>,       // (count)
    _ mask: UnsafeMutablePointer<Float>,    // (count)
    _ x: UnsafePointer<Float>,              // (count)
    count: Int, rate: Double, seed: UInt64, run: UInt64, step: UInt64, threads: Int = 1,
    first: UInt64 = 0  // the index of element 0 in the whole batch (data parallelism)
) {
    let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
    var h = splitmix64Mix(seed &+ golden)
    h = splitmix64Mix(h ^ (run &+ 2 &* golden))
    h = splitmix64Mix(h ^ (step &+ 3 &* golden))
    let keep = Float(1 / (1 - rate))
    // The mask of element i depends on i alone, so any split gives the same bits.
    let T = count >= 1 << 16 ? max(1, threads) : 1
    parallelFor(T) { t in
        let r = splitRange(count, parts: T, t)
        fk_dropout(y + r.lowerBound, mask + r.lowerBound, x + r.lowerBound, r.count, h, first &+ UInt64(r.lowerBound), rate, keep)
    }
}

/// Whether a pooling geometry is 2x2, stride 2, no padding, over even sides (the C fast path).
public func isPlain2x2(_ g: PoolGeometry) -> Bool {
    g.size == 2 && g.stride == 2 && g.padTop == 0 && g.padLeft == 0 && g.inHeight % 2 == 0 && g.inWidth % 2 == 0
        && g.outHeight == g.inHeight / 2 && g.outWidth == g.inWidth / 2
}

/// `maxpoolForward` for a plain 2x2 geometry (`isPlain2x2`), in C. The planes are split over
/// `threads` unless y overlaps x (a pool the plan runs in place shrinks its input front to back:
/// a later plane's output lands on an earlier plane's input, so only one thread, in order).
public func fastMaxpool2x2(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, n: Int, _ g: PoolGeometry,
                           threads: Int = 1) {
    let planes = n * g.channels, inPlane = g.inHeight * g.inWidth, outPlane = inPlane / 4
    let disjoint = UnsafeRawPointer(y + planes * outPlane) <= UnsafeRawPointer(x)
        || UnsafeRawPointer(y) >= UnsafeRawPointer(x + planes * inPlane)
    let T = disjoint && planes * inPlane >= 1 << 15 ? max(1, min(threads, planes)) : 1
    parallelFor(T) { t in
        let r = splitRange(planes, parts: T, t)
        fk_maxpool2x2(y + r.lowerBound * outPlane, x + r.lowerBound * inPlane, r.count,
                      Int32(g.inHeight), Int32(g.inWidth))
    }
}

/// `maxpoolBackward` for a plain 2x2 geometry: writes every element of dx (never in place), the
/// planes split over `threads`.
public func fastMaxpool2x2Backward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                   n: Int, _ g: PoolGeometry, threads: Int = 1) {
    let planes = n * g.channels, inPlane = g.inHeight * g.inWidth, outPlane = inPlane / 4
    let T = planes * inPlane >= 1 << 15 ? max(1, min(threads, planes)) : 1
    parallelFor(T) { t in
        let r = splitRange(planes, parts: T, t)
        fk_maxpool2x2_grad(dx + r.lowerBound * inPlane, dy + r.lowerBound * outPlane, x + r.lowerBound * inPlane,
                           r.count, Int32(g.inHeight), Int32(g.inWidth))
    }
}
