// Face detection with a Haar cascade, with OpenCV 4 CascadeClassifier.detectMultiScale's
// semantics: scales 1, f, f^2, ... whose window (rounded) is at least minSize and at most
// maxSize (default: the image); per scale, the image resized (bilinear) to size/scale, its
// integral images, every window (every second one below scale 2) run through the stages
// (CVision does this part, over threads); then groupRectangles(minNeighbors, eps 0.2).

import CVision

/// A rectangle in image pixels.
public struct Box: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { (self.x, self.y, self.width, self.height) = (x, y, width, height) }
    public var description: String { "[\(x), \(y), \(width), \(height)]" }
    public var area: Int { width * height }

    /// Intersection over union (0 for disjoint or empty boxes).
    public func iou(_ o: Box) -> Double {
        let ix = max(0, min(x + width, o.x + o.width) - max(x, o.x))
        let iy = max(0, min(y + height, o.y + o.height) - max(y, o.y))
        let inter = Double(ix * iy)
        let union = Double(area + o.area) - inter
        return union > 0 ? inter / union : 0
    }
}

public struct DetectionError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A 8-bit grayscale image viewed in memory (no copy): width x height, `stride` bytes per row.
public struct GrayView {
    public var pixels: UnsafePointer<UInt8>
    public var width: Int, height: Int, stride: Int
    public init(pixels: UnsafePointer<UInt8>, width: Int, height: Int, stride: Int) {
        (self.pixels, self.width, self.height, self.stride) = (pixels, width, height, stride)
    }
}

public struct DetectionOptions: Sendable, Equatable {
    public var scaleFactor: Double = 1.1
    public var minNeighbors: Int = 5
    public var minSize: Int = 30
    /// 0: the whole image.
    public var maxSize: Int = 0
    /// Threads for the scales (0: the online processors).
    public var threads: Int = 0
    public init() {}
}

/// A cascade prepared for evaluation; immutable, shareable across threads.
public final class FaceDetector: Sendable {
    public let cascade: HaarCascade
    // The flattened arrays CVision reads (see cv_cascade).
    private let stageTrees: [Int32], stageThreshold: [Float], treeNodes: [Int32]
    private let nodeLeft: [Int32], nodeRight: [Int32], nodeFeature: [Int32], nodeThreshold: [Float], leaves: [Float]
    private let featureRects: [Int32], featureWeights: [Float]

    /// The largest scaled image scanned (pixels; 9 bytes each per thread): 64 Mpx.
    public static let maxScanPixels = 1 << 26

    /// The cascade OpenCV's examples use for faces (Debian's opencv-data).
    public static let defaultCascadePath = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"

    public init(cascade: HaarCascade) {
        self.cascade = cascade
        var st: [Int32] = [], sth: [Float] = [], tn: [Int32] = []
        var nl: [Int32] = [], nr: [Int32] = [], nf: [Int32] = [], nt: [Float] = [], lv: [Float] = []
        for s in cascade.stages {
            st.append(Int32(s.trees.count))
            sth.append(s.threshold)
            for t in s.trees {
                tn.append(Int32(t.left.count))
                nl += t.left; nr += t.right; nf += t.feature; nt += t.threshold; lv += t.leaves
            }
        }
        var fr: [Int32] = [], fw: [Float] = []
        for f in cascade.features {
            for i in 0..<3 {
                if i < f.rects.count {
                    let r = f.rects[i]
                    fr += [r.x, r.y, r.w, r.h]; fw.append(r.weight)
                } else {
                    fr += [0, 0, 0, 0]; fw.append(0)
                }
            }
        }
        (stageTrees, stageThreshold, treeNodes) = (st, sth, tn)
        (nodeLeft, nodeRight, nodeFeature, nodeThreshold, leaves) = (nl, nr, nf, nt, lv)
        (featureRects, featureWeights) = (fr, fw)
    }

    public convenience init(path: String = FaceDetector.defaultCascadePath) throws(CascadeError) {
        self.init(cascade: try HaarCascade(path: path))
    }

    /// The scales detectMultiScale scans for an image of this size.
    public func scales(width: Int, height: Int, options: DetectionOptions) -> [Float] {
        var out: [Float] = []
        let maxW = options.maxSize > 0 ? options.maxSize : width, maxH = options.maxSize > 0 ? options.maxSize : height
        var factor = 1.0
        while factor.isFinite, out.count < 10_000 {
            let ww = Int((Double(cascade.windowWidth) * factor).rounded(.toNearestOrEven))
            let wh = Int((Double(cascade.windowHeight) * factor).rounded(.toNearestOrEven))
            if ww > maxW || wh > maxH { break }
            if ww >= options.minSize, wh >= options.minSize { out.append(Float(factor)) }
            factor *= options.scaleFactor
        }
        return out
    }

    /// Windows every stage accepted, before grouping.
    public func candidates(_ image: GrayView, options: DetectionOptions = DetectionOptions()) throws(DetectionError) -> [Box] {
        guard image.width > 0, image.height > 0, image.stride >= image.width else {
            throw DetectionError("bad image geometry: \(image.width)x\(image.height), stride \(image.stride)")
        }
        guard image.width <= 1 << 15, image.height <= 1 << 15, image.width * image.height <= 1 << 28 else {
            throw DetectionError("image of \(image.width)x\(image.height) is too large to scan (at most 32768 a side and 2^28 pixels)")
        }
        guard options.scaleFactor > 1.0001, options.scaleFactor.isFinite else { throw DetectionError("scale factor \(options.scaleFactor) must be > 1") }
        let scales = self.scales(width: image.width, height: image.height, options: options)
        if scales.isEmpty { return [] }
        // Each thread holds the largest scale's image and two integrals: 9 bytes a pixel.
        let largest = (Double(image.width) / Double(scales[0]) + 1) * (Double(image.height) / Double(scales[0]) + 1)
        guard largest <= Double(FaceDetector.maxScanPixels) else {
            let needed = Int((Double(image.width * image.height) / Double(FaceDetector.maxScanPixels)).squareRoot() * Double(cascade.windowWidth) + 1)
            throw DetectionError("a \(image.width)x\(image.height) image is too large to scan for faces from \(options.minSize) px; use a minimum face size of at least \(needed) px")
        }
        let threads = options.threads > 0 ? options.threads : onlineCPUs()
        var capacity = 4096
        while true {
            var out = [cv_rect](repeating: cv_rect(), count: capacity)
            let n = stageTrees.withUnsafeBufferPointer { st in stageThreshold.withUnsafeBufferPointer { sth in
                treeNodes.withUnsafeBufferPointer { tn in nodeLeft.withUnsafeBufferPointer { nl in
                nodeRight.withUnsafeBufferPointer { nr in nodeFeature.withUnsafeBufferPointer { nf in
                nodeThreshold.withUnsafeBufferPointer { nt in leaves.withUnsafeBufferPointer { lv in
                featureRects.withUnsafeBufferPointer { fr in featureWeights.withUnsafeBufferPointer { fw in
                scales.withUnsafeBufferPointer { sc in
                    var c = cv_cascade(
                        window_w: Int32(cascade.windowWidth), window_h: Int32(cascade.windowHeight),
                        nstages: Int32(st.count), stage_trees: st.baseAddress, stage_threshold: sth.baseAddress,
                        ntrees: Int32(tn.count), tree_nodes: tn.baseAddress, nnodes: Int32(nl.count),
                        node_left: nl.baseAddress, node_right: nr.baseAddress, node_feature: nf.baseAddress,
                        node_threshold: nt.baseAddress, leaves: lv.baseAddress, nfeatures: Int32(fw.count / 3),
                        feature_rects: fr.baseAddress, feature_weights: fw.baseAddress)
                    return out.withUnsafeMutableBufferPointer { o in
                        cv_detect(&c, image.pixels, Int32(image.width), Int32(image.height), Int32(image.stride),
                                  sc.baseAddress, Int32(sc.count), Int32(threads), o.baseAddress, o.count)
                    }
                }}}}}}}}}}}
            guard n >= 0 else { throw DetectionError("out of memory while scanning a \(image.width)x\(image.height) image") }
            if n <= capacity {
                return out[0..<n].map { Box(x: Int($0.x), y: Int($0.y), width: Int($0.w), height: Int($0.h)) }
            }
            guard n <= 50_000_000 else { throw DetectionError("\(n) candidate windows: the cascade accepts nearly everything") }
            capacity = n
        }
    }

    /// Faces: the candidates grouped as groupRectangles(minNeighbors, eps 0.2) does, sorted by
    /// position (top to bottom, then left to right) for a stable order.
    public func detect(_ image: GrayView, options: DetectionOptions = DetectionOptions()) throws(DetectionError) -> [Box] {
        let raw = try candidates(image, options: options)
        return groupRectangles(raw, threshold: options.minNeighbors, eps: 0.2).sorted {
            ($0.y, $0.x, $0.width) < ($1.y, $1.x, $1.width)
        }
    }
}

/// OpenCV's groupRectangles: rectangles are partitioned into classes of "similar" ones (each
/// side within eps * mean of the smaller sizes, transitively); a class with more than
/// `threshold` members gives its average rectangle, unless it lies inside a bigger class's
/// rectangle (with eps slack) that has more members (more than max(3, n)) or it has fewer than
/// 3. threshold <= 0 returns the rectangles unchanged.
public func groupRectangles(_ rects: [Box], threshold: Int, eps: Double) -> [Box] {
    guard threshold > 0, !rects.isEmpty else { return rects }
    // Union-find over pairs of similar rectangles.
    var parent = Array(rects.indices)
    func find(_ i: Int) -> Int {
        var i = i
        while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }
        return i
    }
    func similar(_ a: Box, _ b: Box) -> Bool {
        let delta = eps * Double(min(a.width, b.width) + min(a.height, b.height)) * 0.5
        return Double(abs(a.x - b.x)) <= delta && Double(abs(a.y - b.y)) <= delta
            && Double(abs(a.x + a.width - b.x - b.width)) <= delta && Double(abs(a.y + a.height - b.y - b.height)) <= delta
    }
    for i in rects.indices {
        for j in 0..<i where similar(rects[i], rects[j]) {
            let a = find(i), b = find(j)
            if a != b { parent[a] = b }
        }
    }
    var label: [Int: Int] = [:]
    var sums: [(x: Int, y: Int, w: Int, h: Int, n: Int)] = []
    for i in rects.indices {
        let root = find(i)
        let cls: Int
        if let c = label[root] { cls = c } else { cls = sums.count; label[root] = cls; sums.append((0, 0, 0, 0, 0)) }
        sums[cls].x += rects[i].x; sums[cls].y += rects[i].y; sums[cls].w += rects[i].width; sums[cls].h += rects[i].height; sums[cls].n += 1
    }
    func avg(_ v: Int, _ n: Int) -> Int { Int((Float(v) * (1 / Float(n))).rounded(.toNearestOrEven)) }
    let means = sums.map { Box(x: avg($0.x, $0.n), y: avg($0.y, $0.n), width: avg($0.w, $0.n), height: avg($0.h, $0.n)) }
    var out: [Box] = []
    for i in means.indices {
        let r1 = means[i], n1 = sums[i].n
        if n1 <= threshold { continue }
        var inside = false
        for j in means.indices where j != i {
            let n2 = sums[j].n
            if n2 <= threshold { continue }
            let r2 = means[j]
            let dx = Int((Double(r2.width) * eps).rounded(.toNearestOrEven)), dy = Int((Double(r2.height) * eps).rounded(.toNearestOrEven))
            if r1.x >= r2.x - dx, r1.y >= r2.y - dy, r1.x + r1.width <= r2.x + r2.width + dx, r1.y + r1.height <= r2.y + r2.height + dy,
               n2 > max(3, n1) || n1 < 3 {
                inside = true
                break
            }
        }
        if !inside { out.append(r1) }
    }
    return out
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

func onlineCPUs() -> Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
