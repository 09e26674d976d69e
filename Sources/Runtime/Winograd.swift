// Winograd F(4x4,3x3) forward convolution for the fast Float path: 3x3, stride 1, "same"
// (padding 1) geometries, NCHW input, OIHW weights, any H, W >= 1, any C, O. An opt-in
// replacement for `fastConvForward` (FastConv.swift) with the same epilogue semantics;
// `Executor.winograd` turns it on. The generic `conv2dForward` stays the reference.
//
// Algorithm (Lavin & Gray 2016). The output is cut into 4x4 tiles, tH = ceil(H/4) by
// tW = ceil(W/4) per sample (the last row and column of tiles may be partial: they are computed
// whole and clipped). Tile (th, tw) reads the 6x6 input patch d at rows 4*th-1..4*th+4 and
// columns 4*tw-1..4*tw+4 (zeros outside the input), and for each 3x3 filter g
//   y = A^T [ (G g G^T) (.) (B^T d B) ] A        (4x4 out, (.) elementwise over 6x6)
// with the matrices `winogradBT`, `winogradG`, `winogradAT` below. Summed over input channels,
// the elementwise products become, for each of the 36 positions xi of the 6x6 domain, a matrix
// product over channels:
//   M[xi] (nt x O) = V[xi]^T (nt x C) * U[xi] (C x O)     (nt tiles)
// i.e. 36 sgemm calls of 36*O*C*nt multiply-adds in all, against 9*16*O*C*nt for the direct
// convolution (4x fewer), plus the transforms (O(C + O) per tile), which are linear-time.
//
// Layouts. U = G g G^T (`winogradFilterTransform`, computed in double and rounded to float
// once; separate so that callers can cache it) is (36, C, O) in panels of 16 output channels;
// V is (36, C, nt), tile
// t = (s*tH + th)*tW + tw over the chunk's samples, tiles contiguous; M is (36, nt, O),
// channels contiguous. The products run on `fk_sgemm` (CKernels/gemm.c) with the output
// channels as the vector dimension: there are as few as 9 tiles at batch 1 (12x12 planes),
// never fewer than 8 channels where the compiler picks Winograd.
// The input transform (CKernels/winograd.c) gathers each channel's patches into (36, nt) and
// runs one loop over the tiles (a tile per vector lane); the output transform runs over the
// tiles with 8 channels per vector, applies the epilogue of `fk_conv_epilogue` (bias, preRelu,
// scale/shift, postRelu), scatters each 4x4 tile into NCHW and sums what it wrote for the
// statistics.
//
// Chunks and threads. A chunk is S whole samples, S from the geometry alone so that V and M
// (36*(C + O)*S*tH*tW floats) stay within `winogradChunkBytes` (about one Zen 4 L2): the
// input transform of a chunk, its 36 GEMMs, then its output transform. Whole samples make it
// safe to run in place (the executor lets a conv with O*H*W == C*H*W write over its input):
// a chunk's input is read entirely before any of its output is written.
//   n >= threads: the batch is split into contiguous ranges (`splitRange`), one per thread;
//   n <  threads (batch 1), sample by sample: with at least two rows of tiles per thread, the
//     threads split the rows of tiles (each its own V and M, all channels: one parallel region,
//     two when the conv runs in place); otherwise they split the input channels for the input
//     transform into one shared V (first region), then the output channels for the products
//     (columns of U) and the output transform (second region).
// OpenBLAS runs single-threaded inside the parallel regions (`withSingleThreadedBLAS`).
// Statistics are per-thread double sums added in thread order: bitwise reproducible for a
// given thread count.
import CKernels

/// The F(4x4,3x3) input transform B^T (6x6), row-major.
public let winogradBT: [[Double]] = [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
/// The filter transform G (6x3).
public let winogradG: [[Double]] = [
    [1.0 / 4, 0, 0],
    [-1.0 / 6, -1.0 / 6, -1.0 / 6],
    [-1.0 / 6, 1.0 / 6, -1.0 / 6],
    [1.0 / 24, 1.0 / 12, 1.0 / 6],
    [1.0 / 24, -1.0 / 12, 1.0 / 6],
    [0, 0, 1],
]
/// The output transform A^T (4x6).
public let winogradAT: [[Double]] = [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
]

/// Whether the Winograd path computes this convolution: 3x3, stride 1, padding 1, same size.
public func isWinogradGeometry(_ g: ConvGeometry) -> Bool {
    g.kernelHeight == 3 && g.kernelWidth == 3 && g.stride == 1 && g.padTop == 1 && g.padLeft == 1
        && g.outHeight == g.inHeight && g.outWidth == g.inWidth && g.inHeight >= 1 && g.inWidth >= 1
        && g.inChannels >= 1 && g.outChannels >= 1
}

/// Output channels per panel of the transformed filters.
let winogradPanel = 16

/// Floats of the transformed filters U: 36 x C x O in panels of 16 output channels (the last
/// one padded), or, for the input gradient, 36 x O x C in panels of 16 of the C.
public func winogradFilterCount(_ g: ConvGeometry, gradInput: Bool = false) -> Int {
    let k = gradInput ? g.outChannels : g.inChannels, n = gradInput ? g.inChannels : g.outChannels
    return 36 * k * ((n + winogradPanel - 1) / winogradPanel) * winogradPanel
}

/// u (36, C, O in panels of 16) <- G w G^T for every (o, c) of the OIHW weights w, in double,
/// rounded once (`fk_winograd_filter`). Splits the output channels over `threads`.
public func winogradFilterTransform(_ u: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry,
                                    threads: Int = 1) {
    filterTransform(u, w, g, threads: threads, gradInput: false)
}

/// u (36, O, C in panels of 16) <- the transform of the convolution that computes the input
/// gradient of g (dx = conv(dz, w rotated by 180 degrees, channels swapped): O input channels,
/// C output channels), in double, rounded once. The U of `winogradGradInput`.
public func winogradGradInputFilterTransform(_ u: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
                                             _ g: ConvGeometry, threads: Int = 1) {
    filterTransform(u, w, g, threads: threads, gradInput: true)
}

private func filterTransform(_ u: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry,
                             threads: Int, gradInput: Bool) {
    precondition(isWinogradGeometry(g), "not a Winograd geometry: \(g)")
    let O = g.outChannels, C = g.inChannels
    let T = max(1, min(threads, O))
    parallelFor(T) { t in
        let r = splitRange(O, parts: T, t)
        fk_winograd_filter(u, w, i32(O), i32(C), i32(r.lowerBound), i32(r.upperBound), gradInput ? 1 : 0)
    }
}

/// Bytes of one chunk's V and M that the chunking aims to keep under (about one L2 per core).
public let winogradChunkBytes = 1 << 20

@inline(__always) private func i32(_ v: Int) -> Int32 { Int32(truncatingIfNeeded: v) }

@inline(__always) private func tilesPerSample(_ g: ConvGeometry) -> Int {
    ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4)
}

/// Tiles a chunk has at least: the transformed filters (36*C*O floats, 38 MB for 512 -> 512)
/// are streamed once per chunk, so a chunk of one 6x6 sample (4 tiles) re-read them for every
/// sample; 64 tiles make it 128 flops per float of them.
public let winogradMinChunkTiles = 64

/// Samples per chunk for a geometry: V and M within `winogradChunkBytes`, at least one sample
/// and at least `winogradMinChunkTiles` tiles (the wide, small-plane layers: 16 samples at 6x6,
/// 8 at 12x12).
public func winogradChunk(_ g: ConvGeometry) -> Int {
    let tiles = tilesPerSample(g)
    let perSample = 36 * (g.inChannels + g.outChannels) * tiles * MemoryLayout<Float>.size
    let minSamples = (winogradMinChunkTiles + tiles - 1) / max(tiles, 1)
    return max(1, minSamples, winogradChunkBytes / max(perSample, 1))
}

/// Scratch of one thread for a Winograd convolution: floats (V, M, input transform work, then
/// the per-channel coefficients) and doubles (per-channel sums), with chunks of at most
/// `maxChunk` samples. Layout: V (36*C*nt), M (36*O*nt), work (36*nt + 4*tW + 2), coefficients
/// (3*O, used in thread 0's scratch); nt = S*tH*tW, S = min(winogradChunk(g), maxChunk).
public func winogradScratch(_ g: ConvGeometry, maxChunk: Int = .max) -> (floats: Int, doubles: Int) {
    (winogradCoefficientOffset(g, maxChunk: maxChunk) + 3 * g.outChannels, 4 * g.outChannels)
}

@inline(__always)
private func winogradWorkCount(_ g: ConvGeometry, nt: Int) -> Int {
    36 * nt + 4 * ((g.outWidth + 3) / 4) + 2
}

@inline(__always)
private func winogradCoefficientOffset(_ g: ConvGeometry, maxChunk: Int) -> Int {
    let nt = min(winogradChunk(g), maxChunk) * tilesPerSample(g)
    return 36 * (g.inChannels + g.outChannels) * nt + winogradWorkCount(g, nt: nt)
}

/// out = epilogue(conv(x, w) + b) for the whole batch, from the transformed filters
/// u = `winogradFilterTransform(w)`; `stats` (sum, sumsq per channel, summed over the batch in
/// thread order) when not nil. The epilogue is `fk_conv_epilogue`'s; `scratch` holds at least
/// `winogradScratch(g, maxChunk: scratch.maxChunk)` per thread (`scratch.maxChunk` caps the
/// samples per chunk). `out` may be `x` (in place) when O == C.
public func winogradConvForward(
    _ out: UnsafeMutablePointer<Float>,     // (N, O, H, W)
    _ x: UnsafePointer<Float>,              // (N, C, H, W)
    _ u: UnsafePointer<Float>,              // (36, C, O) in panels of 16 output channels
    _ b: UnsafePointer<Float>?,             // (O) or nil
    preRelu: Bool, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?, postRelu: Bool,
    stats: (sum: UnsafeMutablePointer<Double>, sumsq: UnsafeMutablePointer<Double>)?,
    n: Int, _ g: ConvGeometry, threads: Int, scratch: FastScratch
) {
    precondition(isWinogradGeometry(g), "not a Winograd geometry: \(g)")
    let C = g.inChannels, O = g.outChannels, H = g.inHeight, W = g.inWidth, P = H * W
    let tiles = tilesPerSample(g), tH = (H + 3) / 4, tW = (W + 3) / 4
    let S = min(winogradChunk(g), scratch.maxChunk)
    let pre: Int32 = preRelu ? 1 : 0, post: Int32 = postRelu ? 1 : 0
    let threads = max(threads, 1)
    // Batch split when every thread gets a sample, else (batch 1) a split of the tile rows
    // (large planes) or of the channels (small ones: 12x12 has 3 rows of tiles).
    let T = n >= threads ? threads : (tH >= 2 * threads ? threads : min(threads, max(O, 1)))
    let split = n >= threads
    for t in 0..<T where stats != nil { scratch.doubles[t].update(repeating: 0, count: 2 * O) }
    withSingleThreadedBLAS(T) {
        if split {
            parallelFor(T) { t in
                let v = scratch.floats[t]
                let sum = scratch.doubles[t], sumsq = sum + O
                let range = splitRange(n, parts: T, t)
                var s0 = range.lowerBound
                while s0 < range.upperBound {
                    let s1 = min(range.upperBound, s0 + S), nt = (s1 - s0) * tiles
                    let m = v + 36 * C * nt, work = m + 36 * O * nt
                    fk_winograd_input(v, C * nt, x + s0 * C * P, C * P, P, i32(s1 - s0), i32(C), 0, i32(C), i32(H), i32(W),
                                      0, i32(tH), work)
                    tileProducts(m, v, u, nt: nt, C: C, O: O, columns: 0..<O)
                    fk_winograd_output(out + s0 * O * P, m, nt * O, O, i32(s1 - s0), i32(O), 0, i32(O), i32(H), i32(W),
                                       0, i32(tH), b, pre, scale, shift, post,
                                       stats == nil ? nil : sum, stats == nil ? nil : sumsq)
                    s0 = s1
                }
            }
        } else if tH >= 2 * T {
            // Large planes, one sample at a time: each thread its own rows of tiles, every
            // channel, in its own V and M (no V shared across cores). In place, every thread's
            // input transform ends before any output is written (a tile's patch reaches one
            // row into its neighbours'); otherwise one region does it all.
            let inPlace = UnsafeRawPointer(out) == UnsafeRawPointer(x)
            for s in 0..<n {
                func transform(_ t: Int) {
                    let rows = splitRange(tH, parts: T, t), nt = rows.count * tW
                    let v = scratch.floats[t], work = v + 36 * (C + O) * nt
                    fk_winograd_input(v, C * nt, x + s * C * P, C * P, P, 1, i32(C), 0, i32(C), i32(H), i32(W),
                                      i32(rows.lowerBound), i32(rows.upperBound), work)
                }
                func finish(_ t: Int) {
                    let rows = splitRange(tH, parts: T, t), nt = rows.count * tW
                    let v = scratch.floats[t], m = v + 36 * C * nt
                    let sum = scratch.doubles[t], sumsq = sum + O
                    tileProducts(m, v, u, nt: nt, C: C, O: O, columns: 0..<O)
                    fk_winograd_output(out + s * O * P, m, nt * O, O, 1, i32(O), 0, i32(O), i32(H), i32(W),
                                       i32(rows.lowerBound), i32(rows.upperBound), b, pre, scale, shift, post,
                                       stats == nil ? nil : sum, stats == nil ? nil : sumsq)
                }
                if inPlace {
                    parallelFor(T) { transform($0) }
                    parallelFor(T) { finish($0) }
                } else {
                    parallelFor(T) { transform($0); finish($0) }
                }
            }
        } else {
            // One sample at a time: V is shared (thread 0's), M and the work areas per thread.
            let nt = tiles, v = scratch.floats[0]
            for s in 0..<n {
                parallelFor(T) { t in
                    let c = splitRange(C, parts: T, t)
                    guard !c.isEmpty else { return }
                    let work = scratch.floats[t] + 36 * (C + O) * nt
                    fk_winograd_input(v, C * nt, x + s * C * P, C * P, P, 1, i32(C), i32(c.lowerBound), i32(c.upperBound),
                                      i32(H), i32(W), 0, i32(tH), work)
                }
                parallelFor(T) { t in
                    let o = panelRange(O, parts: T, t), rows = o.count
                    guard rows > 0 else { return }
                    let m = scratch.floats[t] + 36 * C * nt
                    let sum = scratch.doubles[t], sumsq = sum + O
                    tileProducts(m, v, u, nt: nt, C: C, O: O, columns: o)
                    fk_winograd_output(out + s * O * P, m, nt * rows, rows, 1, i32(O), i32(o.lowerBound), i32(o.upperBound),
                                       i32(H), i32(W), 0, i32(tH), b, pre, scale, shift, post,
                                       stats == nil ? nil : sum, stats == nil ? nil : sumsq)
                }
            }
        }
    }
    if let stats { addThreadStatistics(scratch, threads: T, channels: O, into: stats) }
}

/// The 36 tile products for output channels `columns` (starting at a panel boundary):
/// m[xi] (nt, columns.count) = V[xi]^T U[xi], V (36, C, nt) read transposed and U in panels of
/// 16 output channels (`fk_winograd_filter`) — the channels are the vector dimension (tiles can
/// be as few as 9 at batch 1), a panel's 36 operands are read as one contiguous stream (at
/// batch 1 U comes from memory: 27% faster than rows strided by O, measured cold), and
/// `fk_sgemm` reads both in place: OpenBLAS's packing would cost as much as these products.
///
/// From `winogradXiOuterTiles` tiles on (batches, and the wide layers' chunks of several
/// samples), the loop runs position by position instead, each position's product over every
/// panel in one `fk_sgemm_panels` call: V[xi] then stays in L2 across the panels rather than
/// the whole V being read again for each panel (C = O = 512, 64 tiles, one thread: 94 against
/// 65 GFLOP/s with the AVX-512 kernel; C = O = 128, 144 tiles: 128 against 88).
@inline(__always)
func tileProducts(_ m: UnsafeMutablePointer<Float>, _ v: UnsafePointer<Float>, _ u: UnsafePointer<Float>,
                  nt: Int, C: Int, O: Int, columns: Range<Int>) {
    let width = columns.count, P = winogradPanel
    if nt >= winogradXiOuterTiles {
        let first = u + (columns.lowerBound / P) * 36 * C * P
        for xi in 0..<36 {
            fk_sgemm_panels(1, i32(nt), i32(width), i32(C), v + xi * C * nt, nt, first + xi * C * P, P, 36 * C * P,
                            m + xi * nt * width, width, 0)
        }
        return
    }
    var o = columns.lowerBound
    while o < columns.upperBound {
        let w = min(P, columns.upperBound - o)
        let panel = u + (o / P) * 36 * C * P
        for xi in 0..<36 {
            fk_sgemm(1, i32(nt), i32(w), i32(C), v + xi * C * nt, nt, panel + xi * C * P, P,
                     m + xi * nt * width + (o - columns.lowerBound), width, 0)
        }
        o += w
    }
}

/// Tiles from which `tileProducts` runs position-major (below it, at batch 1, panel-major:
/// each panel's operands one contiguous stream from memory).
let winogradXiOuterTiles = 16

/// Output channels of thread t of `parts`: whole panels of the transformed filters.
@inline(__always)
func panelRange(_ channels: Int, parts: Int, _ t: Int) -> Range<Int> {
    let r = splitRange((channels + winogradPanel - 1) / winogradPanel, parts: parts, t)
    return min(channels, r.lowerBound * winogradPanel)..<min(channels, r.upperBound * winogradPanel)
}

// MARK: - The input gradient

/// Floats `winogradGradInputChunk` uses for a chunk of `samples` samples: V (36*O*nt), M
/// (36*C*nt) and the input transform's work.
public func winogradGradInputScratch(_ g: ConvGeometry, samples: Int) -> Int {
    let nt = samples * tilesPerSample(g)
    return 36 * (g.inChannels + g.outChannels) * nt + winogradWorkCount(g, nt: nt)
}

/// dx (samples, C, H, W) = the input gradient of convolution g for a chunk, from its
/// pre-activation gradient dz laid out as the backward's GEMM panels (O, samples, H*W): the
/// convolution of dz with the filters rotated by 180 degrees and their channels swapped, a 3x3
/// "same" convolution itself, by F(4x4,3x3) with u = `winogradGradInputFilterTransform(w)`.
/// Writes dx (no accumulation); `work` holds `winogradGradInputScratch(g, samples:)` floats.
func winogradGradInputChunk(_ dx: UnsafeMutablePointer<Float>, _ dz: UnsafePointer<Float>, _ u: UnsafePointer<Float>,
                            samples S: Int, _ g: ConvGeometry, work: UnsafeMutablePointer<Float>) {
    let C = g.inChannels, O = g.outChannels, H = g.inHeight, W = g.inWidth, P = H * W
    let nt = S * tilesPerSample(g)
    let v = work, m = v + 36 * O * nt, rest = m + 36 * C * nt
    let tH = i32((H + 3) / 4)
    fk_winograd_input(v, O * nt, dz, P, S * P, i32(S), i32(O), 0, i32(O), i32(H), i32(W), 0, tH, rest)
    tileProducts(m, v, u, nt: nt, C: O, O: C, columns: 0..<C)
    fk_winograd_output(dx, m, nt * C, C, i32(S), i32(C), 0, i32(C), i32(H), i32(W), 0, tH, nil, 0, nil, nil, 0, nil, nil)
}

// MARK: - The weight gradient

/// Whether the backward computes dw by Winograd for this geometry (when the plan marks the step
/// Winograd): only where the 4x4 tiles cover the plane with little waste (at least 3/4 of the
/// tiles' outputs inside). At 6x6 (2x2 tiles covering 8x8) it measured no faster than im2col +
/// GEMM on VGG16's 512-channel layers (105-123 against 111-125 ms per backward step) while
/// adding a 38 MB dU partial per thread.
public func winogradWeightGradPays(_ g: ConvGeometry) -> Bool {
    4 * g.outHeight * g.outWidth >= 3 * 16 * tilesPerSample(g)
}

/// Floats of the Winograd weight gradient's area of one thread for chunks of `samples`
/// samples: the partial dU (36*O*C, first), V (36*C*nt), Z (36*O*nt) and the transforms' work.
public func winogradGradWeightScratch(_ g: ConvGeometry, samples: Int) -> Int {
    let nt = samples * tilesPerSample(g)
    return 36 * g.inChannels * g.outChannels + 36 * (g.inChannels + g.outChannels) * nt
        + max(winogradWorkCount(g, nt: nt), 16 * nt)
}

/// du (36, O, C) (+)= the Winograd weight gradient of a chunk before its filter-side adjoint:
/// du[xi] = Z[xi] V[xi]^T, V = B^T d B the forward's input transform of the chunk's x
/// (samples, C, H, W) and Z = A dz A^T the adjoint of its output transform, of dz laid out as the
/// backward's GEMM panels (O, samples, H*W); the products on OpenBLAS (depth: the chunk's
/// tiles). `work` is the area after du (`winogradGradWeightScratch` less 36*O*C).
/// dw = G^T du G, summed over the threads' partials, is `fk_winograd_weight_fold`'s.
/// (Why it is exact: y = A^T [U (.) V] A is linear in U = G w G^T, so dL/dU = (A dz A^T) (.) V
/// per tile, summed over tiles, and dL/dw = G^T (dL/dU) G.)
func winogradGradWeightChunk(_ du: UnsafeMutablePointer<Float>, accumulate: Bool, _ x: UnsafePointer<Float>,
                             _ dz: UnsafePointer<Float>, samples S: Int, _ g: ConvGeometry, work: UnsafeMutablePointer<Float>) {
    let C = g.inChannels, O = g.outChannels, H = g.inHeight, W = g.inWidth, P = H * W
    let nt = S * tilesPerSample(g), tH = i32((H + 3) / 4)
    let v = work, z = v + 36 * C * nt, rest = z + 36 * O * nt
    fk_winograd_input(v, C * nt, x, C * P, P, i32(S), i32(C), 0, i32(C), i32(H), i32(W), 0, tH, rest)
    fk_winograd_grad_output(z, O * nt, dz, P, S * P, i32(S), i32(O), i32(H), i32(W), rest)
    for xi in 0..<36 {
        Float.gemm(transA: false, transB: true, m: O, n: C, k: nt, alpha: 1, a: z + xi * O * nt, lda: nt,
                   b: v + xi * C * nt, ldb: nt, beta: accumulate ? 1 : 0, c: du + xi * O * C, ldc: C)
    }
}

/// The Winograd counterpart of `fastFusedConvForward` (inference: batchnorm with running
/// statistics folded into a per-channel scale and shift, computed exactly as `fusedForward`).
public func winogradFusedConvForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ u: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    runningMean: UnsafePointer<Float>?, runningVar: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch
) {
    withInferenceEpilogue(e, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                          channels: g.outChannels,
                          coef: { scratch.floats[0] + winogradCoefficientOffset(g, maxChunk: scratch.maxChunk) }) { pre, scale, shift, post in
        winogradConvForward(y, x, u, b, preRelu: pre, scale: scale, shift: shift, postRelu: post, stats: nil,
                            n: n, g, threads: threads, scratch: scratch)
    }
}

/// The Winograd counterpart of `fastFusedConvTrainForward` (training: batchnorm with the
/// batch's statistics, from per-channel double sums of the pre-normalization values).
public func winogradFusedConvTrainForward(
    _ y: UnsafeMutablePointer<Float>, _ bnInput: UnsafeMutablePointer<Float>?,
    _ mean: UnsafeMutablePointer<Float>?, _ variance: UnsafeMutablePointer<Float>?,
    _ x: UnsafePointer<Float>, _ u: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
    n: Int, _ g: ConvGeometry, _ e: FusedEpilogue, threads: Int, scratch: FastScratch,
    global: GlobalBatch? = nil  // data parallelism: statistics over every shard
) {
    withTrainingEpilogue(y, bnInput, mean, variance, gamma: gamma, beta: beta, n: n, g, e, threads: threads,
                         scratch: scratch, coef: scratch.floats[0] + winogradCoefficientOffset(g, maxChunk: scratch.maxChunk),
                         global: global) { out, pre, stats in
        winogradConvForward(out, x, u, b, preRelu: pre, scale: nil, shift: nil, postRelu: false, stats: stats,
                            n: n, g, threads: threads, scratch: scratch)
    }
}
