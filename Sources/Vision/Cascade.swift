// A boosted Haar cascade as OpenCV's traincascade writes it (the "new" XML format of the
// cascades in Debian's opencv-data): window size, stages of trees (stumps, or deeper trees)
// over Haar features of up to three upright rectangles. Everything is checked when read —
// rectangles inside the window, feature and node indices in range, children after their
// parents (so evaluation always ends), finite numbers, bounded counts — so evaluation never
// reads out of bounds.

import CVision
import Runtime

public struct CascadeError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public var path: String?
    public var description: String { path.map { "\($0): \(message)" } ?? message }
}

public struct HaarCascade: Sendable {
    public struct Stage: Sendable {
        public var threshold: Float
        public var trees: [Tree]
    }
    public struct Tree: Sendable {
        /// Nodes: left, right (a child > 0 is a node of this tree, <= 0 leaf -child), feature, threshold.
        public var left: [Int32], right: [Int32], feature: [Int32], threshold: [Float]
        public var leaves: [Float]
    }
    public struct Feature: Sendable {
        /// Up to 3 rectangles (x, y, w, h) with weights.
        public var rects: [(x: Int32, y: Int32, w: Int32, h: Int32, weight: Float)]
    }

    public var windowWidth: Int
    public var windowHeight: Int
    public var stages: [Stage]
    public var features: [Feature]

    /// OpenCV subtracts this from every stage threshold when it reads a cascade.
    static let thresholdEpsilon: Float = 1e-5

    public static let maxFileBytes = 64 << 20

    /// Reads a cascade file.
    public init(path: String) throws(CascadeError) {
        let bytes: [UInt8]
        do { bytes = try readRegularFile(path, limit: HaarCascade.maxFileBytes) } catch {
            throw CascadeError(message: "cannot read the cascade file: \(error.what)", path: path)
        }
        do { try self.init(xml: bytes) } catch { throw CascadeError(message: error.message, path: path) }
    }

    /// Parses the bytes of a cascade XML file.
    public init(xml bytes: [UInt8]) throws(CascadeError) {
        let root: XMLElement
        do { root = try XML.parse(bytes) } catch { throw CascadeError(message: "not a valid XML file: \(error)", path: nil) }
        func fail(_ m: String, _ e: XMLElement? = nil) -> CascadeError {
            CascadeError(message: e.map { "line \($0.line): \(m)" } ?? m, path: nil)
        }
        guard root.name == "opencv_storage" else { throw fail("the root element is <\(root.name)>, expected <opencv_storage> (an OpenCV cascade file)") }
        guard let cascade = root.children.first else { throw fail("<opencv_storage> is empty", root) }
        guard cascade.child("stages") != nil, cascade.child("features") != nil else {
            if cascade.child("stages") != nil || cascade.child("size") != nil || cascade.children.contains(where: { $0.name == "_" }) {
                throw fail("an old-format (haartraining) cascade; only the traincascade format (with <features>) is supported", cascade)
            }
            throw fail("<\(cascade.name)> has no <stages> and <features>: not a cascade classifier", cascade)
        }
        func text(_ name: String) throws(CascadeError) -> String {
            guard let e = cascade.child(name) else { throw fail("missing <\(name)>", cascade) }
            return e.text.trimmingCharacters(in: " \t\r\n")
        }
        func int(_ e: XMLElement, _ name: String, _ range: ClosedRange<Int>) throws(CascadeError) -> Int {
            guard let c = e.child(name) else { throw fail("missing <\(name)>", e) }
            guard let v = Int(c.text.trimmingCharacters(in: " \t\r\n")), range.contains(v) else {
                throw fail("<\(name)> must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(c.text.trimmingCharacters(in: " \t\r\n").prefix(40))'", c)
            }
            return v
        }
        if let st = cascade.child("stageType"), st.text.trimmingCharacters(in: " \t\r\n") != "BOOST" {
            throw fail("stage type '\(st.text.trimmingCharacters(in: " \t\r\n"))'; only BOOST is supported", st)
        }
        let featureType = try text("featureType")
        guard featureType == "HAAR" else { throw fail("feature type '\(featureType.prefix(40))'; only HAAR cascades are supported (not LBP or HOG)", cascade) }
        windowWidth = try int(cascade, "width", 3...1000)
        windowHeight = try int(cascade, "height", 3...1000)

        // Features first (the trees index them).
        let featureNodes = cascade.child("features")!.children
        guard !featureNodes.isEmpty else { throw fail("<features> is empty", cascade) }
        var features: [Feature] = []
        features.reserveCapacity(featureNodes.count)
        for (fi, f) in featureNodes.enumerated() {
            guard let rects = f.child("rects") else { throw fail("feature \(fi) has no <rects>", f) }
            if let t = f.child("tilted"), let v = Int(t.text.trimmingCharacters(in: " \t\r\n")), v != 0 {
                throw fail("feature \(fi) is tilted (45-degree features are not supported)", t)
            }
            guard (1...3).contains(rects.children.count) else { throw fail("feature \(fi) has \(rects.children.count) rectangles; expected 1 to 3", rects) }
            var rs: [(x: Int32, y: Int32, w: Int32, h: Int32, weight: Float)] = []
            for r in rects.children {
                let v = HaarCascade.numbers(r.text)
                guard v.count == 5, let x = Int32(exactly: v[0]), let y = Int32(exactly: v[1]), let w = Int32(exactly: v[2]), let h = Int32(exactly: v[3]),
                      v[4].isFinite else {
                    throw fail("feature \(fi): a rectangle must be 'x y w h weight' (integers and a finite weight), got '\(r.text.trimmingCharacters(in: " \t\r\n").prefix(60))'", r)
                }
                guard x >= 0, y >= 0, w > 0, h > 0, Int(x) + Int(w) <= windowWidth, Int(y) + Int(h) <= windowHeight else {
                    throw fail("feature \(fi): rectangle [\(x), \(y), \(w), \(h)] is not inside the \(windowWidth)x\(windowHeight) window", r)
                }
                rs.append((x, y, w, h, Float(v[4])))
            }
            features.append(Feature(rects: rs))
        }
        self.features = features

        let stageNodes = cascade.child("stages")!.children
        guard !stageNodes.isEmpty, stageNodes.count <= 10_000 else { throw fail("<stages> holds \(stageNodes.count) stages; expected 1...10000", cascade) }
        var stages: [Stage] = []
        for (si, s) in stageNodes.enumerated() {
            guard let thr = s.child("stageThreshold"), let t = Float(thr.text.trimmingCharacters(in: " \t\r\n")), t.isFinite else {
                throw fail("stage \(si): missing or bad <stageThreshold>", s)
            }
            guard let weak = s.child("weakClassifiers"), !weak.children.isEmpty else { throw fail("stage \(si) has no <weakClassifiers>", s) }
            var trees: [Tree] = []
            for (ti, w) in weak.children.enumerated() {
                guard let inNode = w.child("internalNodes"), let leafNode = w.child("leafValues") else {
                    throw fail("stage \(si), tree \(ti): missing <internalNodes> or <leafValues>", w)
                }
                let nodes = HaarCascade.numbers(inNode.text), leaves = HaarCascade.numbers(leafNode.text)
                guard !nodes.isEmpty, nodes.count % 4 == 0, nodes.count / 4 <= 1024 else {
                    throw fail("stage \(si), tree \(ti): <internalNodes> must hold groups of 4 numbers (left right feature threshold)", inNode)
                }
                let k = nodes.count / 4
                guard leaves.count == k + 1, leaves.allSatisfy(\.isFinite) else {
                    throw fail("stage \(si), tree \(ti): \(k) nodes need \(k + 1) finite leaf values, got \(leaves.count)", leafNode)
                }
                var tree = Tree(left: [], right: [], feature: [], threshold: [], leaves: leaves.map { Float($0) })
                for j in 0..<k {
                    let l = nodes[4 * j], r = nodes[4 * j + 1], f = nodes[4 * j + 2], th = nodes[4 * j + 3]
                    guard let li = Int32(exactly: l), let ri = Int32(exactly: r), let fi = Int32(exactly: f), th.isFinite else {
                        throw fail("stage \(si), tree \(ti), node \(j): bad numbers", inNode)
                    }
                    for c in [li, ri] {
                        guard (c > 0 && Int(c) > j && Int(c) < k) || (c <= 0 && Int(-c) <= k) else {
                            throw fail("stage \(si), tree \(ti), node \(j): child \(c) is neither a later node nor a leaf", inNode)
                        }
                    }
                    guard fi >= 0, Int(fi) < features.count else {
                        throw fail("stage \(si), tree \(ti), node \(j): feature \(fi) out of range (\(features.count) features)", inNode)
                    }
                    tree.left.append(li); tree.right.append(ri); tree.feature.append(fi); tree.threshold.append(Float(th))
                }
                trees.append(tree)
            }
            stages.append(Stage(threshold: t - HaarCascade.thresholdEpsilon, trees: trees))
        }
        self.stages = stages
    }

    /// Whitespace-separated numbers of an element's text.
    static func numbers(_ text: String) -> [Double] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).map { Double($0) ?? .nan }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let s = Set(set)
        var sub = Substring(self)
        while let f = sub.first, s.contains(f) { sub = sub.dropFirst() }
        while let l = sub.last, s.contains(l) { sub = sub.dropLast() }
        return String(sub)
    }
}
