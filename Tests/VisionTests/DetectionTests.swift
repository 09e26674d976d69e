// Face detection against OpenCV 4's own boxes (../shared/photos/fer-training-scene.json and
// the README's astronaut box), grouping and the scale list checked by hand.

import ImageIO
import Vision
import XCTest

final class DetectionTests: XCTestCase {
    /// Detection in a debug build takes about a second for the scene: once per class.
    nonisolated(unsafe) static var cache: [String: [Box]] = [:]
    /// Parsing the cascade takes about a second in a debug build: once per process.
    nonisolated(unsafe) static var sharedDetector: FaceDetector?

    static func detector() throws -> FaceDetector {
        if let d = sharedDetector { return d }
        let d = try FaceDetector(path: try defaultCascade())
        sharedDetector = d
        return d
    }

    func detect(_ file: String) throws -> [Box] {
        let photos = try sharedPhotos()
        if let b = DetectionTests.cache[file] { return b }
        let detector = try DetectionTests.detector()
        let gray = try ImageIO.read(path: "\(photos)/\(file)").gray()
        let boxes = try gray.withGrayView { try detector.detect($0) }
        DetectionTests.cache[file] = boxes
        return boxes
    }

    func testSceneFindsOpenCVsNineFacesAndNothingElse() throws {
        let scene = try loadScene(try sharedPhotos())
        let found = try detect("fer-training-scene.jpg")
        XCTAssertEqual(scene.opencv.count, 9)
        for r in scene.opencv {
            let ref = Box(x: r[0], y: r[1], width: r[2], height: r[3])
            let best = found.map { $0.iou(ref) }.max() ?? 0
            XCTAssertGreaterThanOrEqual(best, 0.8, "OpenCV's face \(ref) not found (best IoU \(best)) in \(found)")
        }
        // No false positive: every detection is one of the pasted faces.
        for b in found {
            let best = scene.faces.map { Box(x: $0.box[0], y: $0.box[1], width: $0.box[2], height: $0.box[3]).iou(b) }.max() ?? 0
            XCTAssertGreaterThanOrEqual(best, 0.5, "detection \(b) is not a pasted face")
        }
        XCTAssertEqual(found.count, 9, "\(found)")
    }

    func testAstronautPNGAndJPEG() throws {
        let ref = Box(x: 177, y: 66, width: 95, height: 95)
        for file in ["astronaut.png", "astronaut.jpg"] {
            let found = try detect(file)
            XCTAssertEqual(found.count, 1, "\(file): \(found)")
            XCTAssertGreaterThanOrEqual(found.first?.iou(ref) ?? 0, 0.8, "\(file): \(found)")
        }
    }

    func testNoFacesInTheCatTheCupAndTheRocket() throws {
        for file in ["chelsea.png", "coffee.png", "rocket.jpg"] {
            XCTAssertEqual(try detect(file), [], file)
        }
    }

    /// groupRectangles on hand-made candidates: a cluster of 7 near one box, a cluster of 2
    /// (dropped at 5 neighbours), and a small cluster of 6 inside a big cluster of 9 (dropped:
    /// the big one has more members).
    func testGroupRectangles() {
        var rects: [Box] = []
        for d in 0..<7 { rects.append(Box(x: 100 + d % 3, y: 50 + d % 2, width: 40 + d % 2, height: 40 + d % 2)) }
        rects += [Box(x: 300, y: 300, width: 30, height: 30), Box(x: 301, y: 300, width: 30, height: 30)]
        for d in 0..<9 { rects.append(Box(x: 500 + d % 3, y: 500, width: 100, height: 100)) }
        for d in 0..<6 { rects.append(Box(x: 520 + d % 2, y: 520, width: 40, height: 40)) }
        let g = groupRectangles(rects, threshold: 5, eps: 0.2)
        // Means: x (100*7 + 0+1+2+0+1+2+0)/7 = 100.857 -> 101; y 50 + 3/7 -> 50; size 40 + 3/7 -> 40.
        XCTAssertEqual(Set(g), [Box(x: 101, y: 50, width: 40, height: 40), Box(x: 501, y: 500, width: 100, height: 100)])
        XCTAssertEqual(groupRectangles(rects, threshold: 0, eps: 0.2), rects)
    }

    /// The pyramid of an 800x600 image at 1.1 from 30 px: 1.1^3 (window 32) up to 600/24.
    func testScales() throws {
        let detector = try DetectionTests.detector()
        let s = detector.scales(width: 800, height: 600, options: DetectionOptions())
        XCTAssertEqual(Double(s.first ?? 0), 1.331, accuracy: 1e-5)
        for (a, b) in zip(s, s.dropFirst()) { XCTAssertEqual(Double(b / a), 1.1, accuracy: 1e-5) }
        XCTAssertLessThanOrEqual((24 * Double(s.last!)).rounded(), 600)
        XCTAssertGreaterThan((24 * Double(s.last!) * 1.1).rounded(), 600)
    }

    /// A gray view with a stride wider than the row finds the same faces as a packed one.
    func testStridedViewAndRGBEntryAgree() throws {
        let photos = try sharedPhotos()
        let rgb = try ImageIO.read(path: "\(photos)/astronaut.png")
        XCTAssertEqual(rgb.channels, 3)
        let gray = rgb.gray()
        let stride = gray.width + 13
        var padded = [UInt8](repeating: 0, count: stride * gray.height)
        for y in 0..<gray.height { for x in 0..<gray.width { padded[y * stride + x] = gray.pixels[y * gray.width + x] } }
        let detector = try DetectionTests.detector()
        let boxes = try padded.withUnsafeBufferPointer {
            try detector.detect(GrayView(pixels: $0.baseAddress!, width: gray.width, height: gray.height, stride: stride))
        }
        XCTAssertEqual(boxes, try detect("astronaut.png"))
    }

    /// A scan that would need too much memory is refused before anything is allocated, with
    /// the minimum face size that would work.
    func testHugeImagesAskForALargerMinimumFace() throws {
        let detector = try DetectionTests.detector()
        let side = 9000
        let pixels = [UInt8](repeating: 128, count: side * side)
        var o = DetectionOptions()
        o.minSize = 24
        XCTAssertThrowsError(try pixels.withUnsafeBufferPointer {
            try detector.detect(GrayView(pixels: $0.baseAddress!, width: side, height: side, stride: side), options: o)
        }) { e in
            XCTAssertTrue("\(e)".contains("too large to scan for faces from 24 px; use a minimum face size of at least 27 px"), "\(e)")
        }
    }
}
