// The preprocessing kernels (the graph language's preprocessing ops, GraphIR/Preprocess.swift):
// each maps one image plane [H, W] to one of the same size, on pixel values 0..255. They follow
// the exact calls of the paper's notebooks (scikit-image 0.26, OpenCV) on an 8-bit face:
// docs/graph-language.md has each formula; Tests/ParityTests/PreprocessParityTests.swift checks
// them against ../shared/fixtures/preprocess_reference.npz. Arithmetic is in Double except
// where the reference computes in float32 (Yen's criterion, CLAHE's interpolation), which is
// reproduced step by step so that its roundings, and so its masks and levels, are the same.

import Glibc

/// Which technique a `preprocess` kernel applies.
public enum PreprocessTechnique: Sendable, Hashable, Codable {
    /// scikit-image `filters.rank.equalize(footprint=disk(radius))`, 0..255.
    case equalizeLocal(radius: Int)
    /// scikit-image `exposure.equalize_hist`: the cumulative histogram, 0..1.
    case equalizeHist
    /// scikit-image `exposure.equalize_adapthist(clip_limit=clip)`, 0..1.
    case clahe(clip: Double)
    /// OpenCV `normalize(NORM_MINMAX, 0, 1)`.
    case normalizeMinmax
    case sobel, scharr, prewitt, roberts
    /// 0/1 masks x > t.
    case thresholdYen, thresholdIsodata, thresholdMean
    /// (x - mean) / std, 0 on a constant image.
    case standardize
    /// Toward zero.
    case truncate

    /// The graph-language name (for descriptions).
    public var name: String {
        switch self {
        case .equalizeLocal(let r): return "equalize_local(radius=\(r))"
        case .equalizeHist: return "equalize_hist"
        case .clahe(let clip): return "clahe(clip=\(clip))"
        case .normalizeMinmax: return "normalize_minmax"
        case .sobel: return "sobel"
        case .scharr: return "scharr"
        case .prewitt: return "prewitt"
        case .roberts: return "roberts"
        case .thresholdYen: return "threshold(method=yen)"
        case .thresholdIsodata: return "threshold(method=isodata)"
        case .thresholdMean: return "threshold(method=mean)"
        case .standardize: return "standardize"
        case .truncate: return "truncate"
        }
    }

    /// Largest radius a plan may ask for (GraphIR's `Preprocess.maxRadius`).
    public static let maxRadius = 1024
}

/// Applies `technique` to `planes` image planes of `height` x `width`, splitting the planes over
/// up to `threads` threads (each plane is independent, so results do not depend on the split).
public func preprocessForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, planes: Int, height: Int, width: Int,
    _ technique: PreprocessTechnique, threads: Int = 1
) {
    let size = height * width
    let parts = max(1, min(threads, planes))
    parallelFor(parts) { part in
        var input = [Double](repeating: 0, count: size)
        var output = [Double](repeating: 0, count: size)
        for p in splitRange(planes, parts: parts, part) {
            let xp = x + p * size, yp = y + p * size
            for i in 0..<size { input[i] = Double(xp[i]) }
            preprocessPlane(technique, input, &output, height: height, width: width)
            for i in 0..<size { yp[i] = T(output[i]) }
        }
    }
}

/// One plane, in Double.
public func preprocessPlane(_ technique: PreprocessTechnique, _ x: [Double], _ y: inout [Double], height h: Int, width w: Int) {
    precondition(x.count == h * w && y.count == h * w && h >= 1 && w >= 1)
    switch technique {
    case .equalizeLocal(let radius): equalizeLocal(x, &y, h, w, radius: radius)
    case .equalizeHist: equalizeHist(x, &y)
    case .clahe(let clip): clahe(x, &y, h, w, clip: clip)
    case .normalizeMinmax: normalizeMinmax(x, &y)
    case .sobel: separableEdge(x, &y, h, w, smooth: (1.0 / 4, 2.0 / 4, 1.0 / 4))
    case .scharr: separableEdge(x, &y, h, w, smooth: (3.0 / 16, 10.0 / 16, 3.0 / 16))
    case .prewitt: separableEdge(x, &y, h, w, smooth: (1.0 / 3, 1.0 / 3, 1.0 / 3))
    case .roberts: roberts(x, &y, h, w)
    case .thresholdYen:
        let u = levelsOf(x)
        mask(u, &y, above: Double(yenLevel(u)))
    case .thresholdIsodata:
        let u = levelsOf(x)
        mask(u, &y, above: Double(isodataLevel(u)))
    case .thresholdMean:
        let m = x.reduce(0, +) / Double(x.count)
        for i in x.indices { y[i] = x[i] > m ? 1 : 0 }
    case .standardize: standardize(x, &y)
    case .truncate:
        for i in x.indices { y[i] = x[i].rounded(.towardZero) }
    }
}

// MARK: - Pixel levels

/// The 8-bit level of a pixel value: clamp(round(v), 0, 255), NaN read as 0.
@inline(__always)
func pixelLevel(_ v: Double) -> Int {
    guard v > 0 else { return 0 }  // also NaN
    return v >= 255 ? 255 : Int(v.rounded())
}

func levelsOf(_ x: [Double]) -> [Int] { x.map(pixelLevel) }

private func mask(_ levels: [Int], _ y: inout [Double], above t: Double) {
    for i in levels.indices { y[i] = Double(levels[i]) > t ? 1 : 0 }
}

/// The integer square root: the largest s with s * s <= n.
private func isqrt(_ n: Int) -> Int {
    var s = Int(Double(n).squareRoot())
    while s * s > n { s -= 1 }
    while (s + 1) * (s + 1) <= n { s += 1 }
    return s
}

// MARK: - Local equalization (rank.equalize with a disk)

/// For each pixel, over the disk of `radius` around it clipped to the image (pixels outside are
/// not counted): floor(255 * #{levels <= own level} / #{pixels}). A histogram slides along each
/// row, as scikit-image's rank filters do.
private func equalizeLocal(_ x: [Double], _ y: inout [Double], _ h: Int, _ w: Int, radius: Int) {
    let u = levelsOf(x)
    // half[d]: the disk's half-width on row offset d - radius (x^2 + y^2 <= r^2).
    let half = (0...(2 * radius)).map { isqrt(radius * radius - ($0 - radius) * ($0 - radius)) }
    var hist = [Int32](repeating: 0, count: 256)
    u.withUnsafeBufferPointer { u in
        half.withUnsafeBufferPointer { half in
            hist.withUnsafeMutableBufferPointer { hist in
                y.withUnsafeMutableBufferPointer { y in
                    for r in 0..<h {
                        for i in 0..<256 { hist[i] = 0 }
                        var pop = 0
                        let r0 = max(0, r - radius), r1 = min(h - 1, r + radius)
                        for rr in r0...r1 {
                            let hw = half[rr - r + radius]
                            for cc in 0...min(w - 1, hw) { hist[u[rr * w + cc]] += 1; pop += 1 }
                        }
                        for c in 0..<w {
                            if c > 0 {
                                for rr in r0...r1 {
                                    let hw = half[rr - r + radius], row = rr * w
                                    let out = c - 1 - hw, into = c + hw
                                    if out >= 0 { hist[u[row + out]] -= 1; pop -= 1 }
                                    if into < w { hist[u[row + into]] += 1; pop += 1 }
                                }
                            }
                            let g = u[r * w + c]
                            var sum: Int32 = 0
                            for i in 0...g { sum &+= hist[i] }
                            y[r * w + c] = (Double(255 * Int(sum)) / Double(pop)).rounded(.down)
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Global equalization (exposure.equalize_hist)

/// The cumulative histogram of the 8-bit levels at each pixel's level, over the pixel count.
private func equalizeHist(_ x: [Double], _ y: inout [Double]) {
    let u = levelsOf(x)
    var hist = [Int](repeating: 0, count: 256)
    for v in u { hist[v] += 1 }
    var cdf = [Int](repeating: 0, count: 256)
    var sum = 0
    for i in 0..<256 { sum += hist[i]; cdf[i] = sum }
    for i in u.indices { y[i] = Double(cdf[u[i]]) / Double(sum) }
}

// MARK: - CLAHE (exposure.equalize_adapthist)

/// numpy's `reflect` padding: index i of an axis of n mirrored about the end elements.
@inline(__always)
private func mirror(_ i: Int, _ n: Int) -> Int {
    guard n > 1 else { return 0 }
    let period = 2 * (n - 1)
    var k = i % period
    if k < 0 { k += period }
    return k < n ? k : period - k
}

/// scikit-image's clip_histogram: clip at `limit`, spread the excess evenly, then the rest in
/// strides over the bins still under the limit.
func clipHistogram(_ hist: inout [Int], limit: Int) {
    let n = hist.count
    var excess = 0
    for i in 0..<n where hist[i] > limit { excess += hist[i] - limit; hist[i] = limit }
    let increment = excess / n
    let upper = limit - increment
    for i in 0..<n where hist[i] < upper {
        excess -= increment
        hist[i] += increment
    }
    for i in 0..<n where hist[i] >= upper && hist[i] < limit {
        excess += hist[i] - limit
        hist[i] = limit
    }
    // The bins under the limit, counted once and kept up to date (scikit-image recounts them
    // for every index; the count is the same).
    var under = hist.reduce(0) { $0 + ($1 < limit ? 1 : 0) }
    while excess > 0 {
        let before = excess
        for index in 0..<n {
            let step = max(1, under / excess)
            var j = index
            var added = 0
            while j < n {
                if hist[j] < limit {
                    hist[j] += 1
                    added += 1
                    if hist[j] == limit { under -= 1 }
                }
                j += step
            }
            excess -= added
            if excess <= 0 { break }
        }
        if before == excess { break }
    }
}

private func clahe(_ x: [Double], _ y: inout [Double], _ h: Int, _ w: Int, clip: Double) {
    let grays = 1 << 14, bins = 256
    // img_as_uint (v * 257), then rescaled to 0 ..< 2^14 and rounded half to even.
    let u16 = levelsOf(x).map { $0 * 257 }
    let lo = u16.min()!, hi = u16.max()!
    let image: [Int] = u16.map { v in
        if lo == hi { return min(v, grays - 1) }
        let s = Double(v - lo) / Double(hi - lo) * Double(grays - 1)
        return Int(s.rounded(.toNearestOrEven))
    }
    let ky = max(h / 8, 1), kx = max(w / 8, 1)
    let top = ky / 2, left = kx / 2
    let ph = h + top + (ky - h % ky) % ky + (ky + 1) / 2
    let pw = w + left + (kx - w % kx) % kx + (kx + 1) / 2
    let binSize = 1 + grays / bins
    // The padded image's bins.
    var padded = [Int](repeating: 0, count: ph * pw)
    for r in 0..<ph {
        let sr = mirror(r - top, h)
        for c in 0..<pw { padded[r * pw + c] = image[sr * w + mirror(c - left, w)] / binSize }
    }
    // One mapping per tile: the tiles start at (top, left) in the padded image.
    let ty = ph / ky - 1, tx = pw / kx - 1
    let elements = ky * kx
    let limit = clip > 0 ? Int(max(clip * Double(elements), 1)) : elements
    let scale = Double(grays - 1) / Double(elements)
    var maps = [Int](repeating: 0, count: ty * tx * bins)
    var hist = [Int](repeating: 0, count: bins)
    for a in 0..<ty {
        for b in 0..<tx {
            for i in hist.indices { hist[i] = 0 }
            for r in 0..<ky {
                for c in 0..<kx { hist[padded[(top + a * ky + r) * pw + left + b * kx + c]] += 1 }
            }
            clipHistogram(&hist, limit: limit)
            var sum = 0
            for i in 0..<bins {
                sum += hist[i]
                maps[(a * tx + b) * bins + i] = Int(min(Double(sum) * scale, Double(grays - 1)))
            }
        }
    }
    // Bilinear between the four tile mappings around each block, in float32 as the reference
    // accumulates; the block grid is offset by half a tile, with the edge tiles repeated.
    var result = [Double](repeating: 0, count: h * w)
    maps.withUnsafeBufferPointer { maps in
        for r in top..<(top + h) {
            let by = r / ky, cy = Double(r % ky) / Double(ky)
            // The tile rows above and below (e0 = 0, 1), edge tiles repeated.
            let a0 = min(max(by - 1, 0), ty - 1), a1 = min(by, ty - 1)
            for c in left..<(left + w) {
                let bx = c / kx, cx = Double(c % kx) / Double(kx)
                let b0 = min(max(bx - 1, 0), tx - 1), b1 = min(bx, tx - 1)
                let v = padded[r * pw + c]
                // In scikit-image's order: edges (0,0), (0,1), (1,0), (1,1), each weight the
                // column factor times the row factor, each term rounded to float32 and summed.
                var acc = Float(Double(maps[(a0 * tx + b0) * bins + v]) * ((1 - cx) * (1 - cy)))
                acc += Float(Double(maps[(a0 * tx + b1) * bins + v]) * (cx * (1 - cy)))
                acc += Float(Double(maps[(a1 * tx + b0) * bins + v]) * ((1 - cx) * cy))
                acc += Float(Double(maps[(a1 * tx + b1) * bins + v]) * (cx * cy))
                result[(r - top) * w + (c - left)] = Double(Int(acc))  // astype(uint16): toward zero
            }
        }
    }
    // rescale_intensity to 0..1 (a constant result is clipped to 0..1).
    let rlo = result.min()!, rhi = result.max()!
    for i in result.indices {
        y[i] = rlo != rhi ? (result[i] - rlo) / (rhi - rlo) : min(max(result[i], 0), 1)
    }
}

// MARK: - Min-max normalization (cv2.normalize NORM_MINMAX)

private func normalizeMinmax(_ x: [Double], _ y: inout [Double]) {
    let lo = x.min()!, hi = x.max()!
    let scale = hi - lo > Double.ulpOfOne ? 1 / (hi - lo) : 0
    let shift = -lo * scale
    for i in x.indices { y[i] = x[i] * scale + shift }
}

// MARK: - Edge filters (filters.sobel/scharr/prewitt/roberts)

/// scipy.ndimage's `reflect` border: the edge pixel repeated (d c b a | a b c d | d c b a).
@inline(__always)
private func edgeMirror(_ i: Int, _ n: Int) -> Int {
    let period = 2 * n
    var k = i % period
    if k < 0 { k += period }
    return k < n ? k : period - 1 - k
}

/// x/255 with one pixel of scipy's `reflect` border around it: [(h + 2) x (w + 2)].
private func bordered(_ x: [Double], _ h: Int, _ w: Int) -> [Double] {
    let pw = w + 2
    var p = [Double](repeating: 0, count: (h + 2) * pw)
    for r in 0..<(h + 2) {
        let sr = edgeMirror(r - 1, h)
        for c in 0..<pw { p[r * pw + c] = x[sr * w + edgeMirror(c - 1, w)] / 255 }
    }
    return p
}

/// sqrt((gr^2 + gc^2) / 2) of x/255, where gr is the central difference along rows smoothed by
/// `smooth` along columns, and gc the same transposed.
private func separableEdge(_ x: [Double], _ y: inout [Double], _ h: Int, _ w: Int,
                           smooth s: (Double, Double, Double)) {
    let pw = w + 2
    let padded = bordered(x, h, w)
    padded.withUnsafeBufferPointer { p in
        y.withUnsafeMutableBufferPointer { y in
            for r in 0..<h {
                let up = r * pw, mid = up + pw, down = mid + pw  // rows r-1, r, r+1 of the image
                for c in 0..<w {
                    let gr = s.0 * (p[down + c] - p[up + c]) + s.1 * (p[down + c + 1] - p[up + c + 1])
                        + s.2 * (p[down + c + 2] - p[up + c + 2])
                    let gc = s.0 * (p[up + c + 2] - p[up + c]) + s.1 * (p[mid + c + 2] - p[mid + c])
                        + s.2 * (p[down + c + 2] - p[down + c])
                    y[r * w + c] = (gr * gr + gc * gc).squareRoot() / 2.0.squareRoot()
                }
            }
        }
    }
}

/// sqrt((d1^2 + d2^2) / 2) of x/255 with the diagonal differences d1 = p[r+1,c+1] - p[r,c] and
/// d2 = p[r+1,c] - p[r,c+1] (the last row and column repeated past the edge).
private func roberts(_ x: [Double], _ y: inout [Double], _ h: Int, _ w: Int) {
    let pw = w + 2
    let padded = bordered(x, h, w)
    padded.withUnsafeBufferPointer { p in
        y.withUnsafeMutableBufferPointer { y in
            for r in 0..<h {
                let here = (r + 1) * pw + 1, below = here + pw
                for c in 0..<w {
                    let d1 = p[below + c + 1] - p[here + c], d2 = p[below + c] - p[here + c + 1]
                    y[r * w + c] = (d1 * d1 + d2 * d2).squareRoot() / 2.0.squareRoot()
                }
            }
        }
    }
}

// MARK: - Thresholds (filters.threshold_yen/isodata/mean)

/// The histogram of the levels from their minimum to their maximum (scikit-image's histogram
/// of an integer image), with that minimum.
private func levelHistogram(_ u: [Int]) -> (counts: [Int], first: Int) {
    let lo = u.min()!, hi = u.max()!
    var counts = [Int](repeating: 0, count: hi - lo + 1)
    for v in u { counts[v - lo] += 1 }
    return (counts, lo)
}

/// Yen's threshold level, computed in float32 as scikit-image does.
func yenLevel(_ u: [Int]) -> Int {
    let (counts, first) = levelHistogram(u)
    let n = counts.count
    guard n > 1 else { return first }
    let total = Float(counts.reduce(0, +))
    let pmf = counts.map { Float($0) / total }
    var p1 = [Float](repeating: 0, count: n), p1sq = p1, p2sq = p1
    var acc: Float = 0, accSq: Float = 0
    for i in 0..<n { acc += pmf[i]; p1[i] = acc; accSq += pmf[i] * pmf[i]; p1sq[i] = accSq }
    accSq = 0
    for i in stride(from: n - 1, through: 0, by: -1) { accSq += pmf[i] * pmf[i]; p2sq[i] = accSq }
    var best = 0
    var bestValue = -Float.infinity
    for i in 0..<(n - 1) {
        let q = p1[i] * (1 - p1[i])
        let crit = Glibc.logf((1 / (p1sq[i] * p2sq[i + 1])) * (q * q))
        if crit.isNaN { best = i; break }  // numpy's argmax takes the first NaN
        if crit > bestValue { best = i; bestValue = crit }
    }
    return first + best
}

/// The ISODATA level: the lowest level t with 0 <= (mean below-or-at t + mean above t) / 2 - t < 1
/// (counts in float32, intensity sums in float64, as scikit-image).
func isodataLevel(_ u: [Int]) -> Int {
    let (counts, first) = levelHistogram(u)
    let n = counts.count
    guard n > 1 else { return first }
    var csuml = [Float](repeating: 0, count: n)
    var acc: Float = 0
    for i in 0..<n { acc += Float(counts[i]); csuml[i] = acc }
    var csumIntensity = [Double](repeating: 0, count: n)
    var accI = 0.0
    for i in 0..<n { accI += Double(counts[i]) * Double(first + i); csumIntensity[i] = accI }
    for i in 0..<(n - 1) {
        let lower = csumIntensity[i] / Double(csuml[i])
        let higher = (csumIntensity[n - 1] - csumIntensity[i]) / Double(csuml[n - 1] - csuml[i])
        let distance = (lower + higher) / 2 - Double(first + i)
        if distance >= 0 && distance < 1 { return first + i }
    }
    return first + n - 2  // not reached for a histogram of counts (the means are monotone)
}

// MARK: - Standardization

private func standardize(_ x: [Double], _ y: inout [Double]) {
    let n = Double(x.count)
    let mean = x.reduce(0, +) / n
    let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
    let std = variance.squareRoot()
    for i in x.indices { y[i] = std > 0 ? (x[i] - mean) / std : 0 }
}
