// Damaged inputs: a few thousand truncated and bit-flipped variants of the shared photos (JPEG,
// PNG), of a PGM/PPM, and of a cascade are each either decoded into a sane result or rejected
// with an error naming the input — never a crash, a hang or an absurd allocation. Seeded, so
// a failure reproduces.

import ImageIO
import Vision
import XCTest

/// SplitMix64: a small seeded generator.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `count` variants of `bytes`: half truncated at random lengths, half with 1-4 bits flipped
/// (in the first 4 KiB for half of those, where headers are).
func variants(_ bytes: [UInt8], count: Int, seed: UInt64) -> [(kind: String, bytes: [UInt8])] {
    var rng = SeededRandom(state: seed)
    var out: [(String, [UInt8])] = []
    for i in 0..<count {
        if i % 2 == 0 {
            out.append(("truncated", Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))))
        } else {
            var b = bytes
            let limit = i % 4 == 1 ? min(4096, b.count) : b.count
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<limit, using: &rng)] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
            }
            out.append(("flipped", b))
        }
    }
    return out
}

final class FuzzTests: XCTestCase {
    func checkImages(_ original: [UInt8], name: String, count: Int, seed: UInt64) -> (decoded: Int, rejected: Int) {
        var decoded = 0, rejected = 0
        for (i, v) in variants(original, count: count, seed: seed).enumerated() {
            let path = "\(name)#\(i)"
            do {
                let img = try ImageIO.decode(v.bytes, path: path)
                XCTAssertTrue(img.width > 0 && img.height > 0 && img.pixels.count == img.width * img.height * img.channels)
                // A truncated JPEG or PNG is never taken as a whole image.
                if v.kind == "truncated", name.hasSuffix(".jpg") || name.hasSuffix(".png") {
                    XCTFail("\(path): a truncated file (\(v.bytes.count) of \(original.count) bytes) decoded")
                }
                decoded += 1
            } catch {
                XCTAssertTrue(error.description.hasPrefix("\(path): "), error.description)
                XCTAssertGreaterThan(error.message.count, 5, error.description)
                rejected += 1
            }
        }
        return (decoded, rejected)
    }

    func testPhotosSurviveTruncationAndBitFlips() throws {
        let photos = try sharedPhotos()
        var total = 0
        for (k, file) in ["astronaut.jpg", "rocket.jpg", "astronaut.png", "chelsea.png"].enumerated() {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(photos)/\(file)")))
            let r = checkImages(bytes, name: file, count: 250, seed: UInt64(k + 1))
            XCTAssertGreaterThan(r.rejected, 90, "\(file): \(r)")
            total += r.decoded + r.rejected
        }
        // PGM and PPM (a 64x64 gray and colour cut of the astronaut).
        let astro = try ImageIO.read(path: "\(photos)/astronaut.png")
        var rgb: [UInt8] = [], gray: [UInt8] = []
        for y in 0..<64 { for x in 0..<64 { let i = ((y + 60) * 512 + x + 180) * 3; rgb += astro.pixels[i..<i + 3] } }
        gray = Image(width: 64, height: 64, channels: 3, pixels: rgb).gray().pixels
        for (name, bytes) in [("cut.ppm", Array("P6\n64 64\n255\n".utf8) + rgb), ("cut.pgm", Array("P5\n64 64\n255\n".utf8) + gray)] {
            let r = checkImages(bytes, name: name, count: 200, seed: 99)
            XCTAssertGreaterThan(r.rejected, 60, "\(name): \(r)")
            total += r.decoded + r.rejected
        }
        XCTAssertEqual(total, 1400)
    }

    /// A small cascade written from the first two stages of the default one (so it parses fast
    /// in a debug build), then a thousand variants of its XML; those that still parse are run
    /// on a small image. A few cuts of the full cascade file too.
    func testCascadeParserSurvivesTruncationAndBitFlips() throws {
        let full = try DetectionTests.detector().cascade
        let xml = Array(cascadeXML(full, stages: 2).utf8)
        let small = try HaarCascade(xml: xml)
        XCTAssertEqual(small.stages.count, 2)
        XCTAssertEqual(small.stages.map(\.trees.count), full.stages.prefix(2).map(\.trees.count))
        let image = (0..<(40 * 40)).map { UInt8(($0 * 7919) % 251) }
        var parsed = 0, rejected = 0
        for v in variants(xml, count: 1000, seed: 7) {
            do {
                let c = try HaarCascade(xml: v.bytes)
                parsed += 1
                let d = FaceDetector(cascade: c)
                var o = DetectionOptions()
                o.minSize = 10
                o.threads = 1
                _ = try image.withUnsafeBufferPointer { try d.candidates(GrayView(pixels: $0.baseAddress!, width: 40, height: 40, stride: 40), options: o) }
            } catch let e as CascadeError {
                XCTAssertFalse(e.message.isEmpty)
                rejected += 1
            }
        }
        XCTAssertEqual(parsed + rejected, 1000)
        XCTAssertGreaterThan(rejected, 300)
        let fileBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try defaultCascade())))
        for cut in [fileBytes.count / 10, fileBytes.count - 20] {
            XCTAssertThrowsError(try HaarCascade(xml: Array(fileBytes.prefix(cut)))) { e in
                XCTAssertTrue("\(e)".contains("not a valid XML file"), "\(e)")
            }
        }
    }

    func testCascadeErrorsNameTheProblem() {
        func message(_ s: String) -> String {
            do { _ = try HaarCascade(xml: Array(s.utf8)); return "parsed" } catch { return error.description }
        }
        XCTAssertTrue(message("<a><b></a>").contains("does not match"))
        XCTAssertTrue(message("<opencv_storage><cascade><stageType>BOOST</stageType><featureType>LBP</featureType><stages/><features/></cascade></opencv_storage>").contains("only HAAR"))
        XCTAssertTrue(message(String(repeating: "<a>", count: 100)).contains("nested deeper"))
        let badRect = """
        <opencv_storage><cascade><stageType>BOOST</stageType><featureType>HAAR</featureType><height>24</height><width>24</width>
        <stages><_><stageThreshold>-1</stageThreshold><weakClassifiers><_><internalNodes>0 -1 0 0.5</internalNodes><leafValues>1 -1</leafValues></_></weakClassifiers></_></stages>
        <features><_><rects><_>20 0 10 4 -1.</_></rects></_></features></cascade></opencv_storage>
        """
        XCTAssertTrue(message(badRect).contains("not inside the 24x24 window"), message(badRect))
        let badFeature = badRect.replacingOccurrences(of: "20 0 10 4", with: "0 0 10 4").replacingOccurrences(of: "0 -1 0 0.5", with: "0 -1 3 0.5")
        XCTAssertTrue(message(badFeature).contains("feature 3 out of range"), message(badFeature))
        let cycle = badFeature.replacingOccurrences(of: "0 -1 3 0.5", with: "0 0 0 0.5 0 -1 0 0.5").replacingOccurrences(of: "<leafValues>1 -1", with: "<leafValues>1 -1 2")
        XCTAssertTrue(message(cycle).contains("neither a later node nor a leaf") || message(cycle) == "parsed", message(cycle))
    }
}

/// The traincascade XML of a cascade's first `stages` stages (features renumbered).
func cascadeXML(_ c: HaarCascade, stages n: Int) -> String {
    var used: [Int32: Int] = [:], order: [Int32] = []
    for s in c.stages.prefix(n) { for t in s.trees { for f in t.feature where used[f] == nil { used[f] = order.count; order.append(f) } } }
    var x = "<?xml version=\"1.0\"?>\n<opencv_storage>\n<cascade type_id=\"opencv-cascade-classifier\"><stageType>BOOST</stageType>\n"
    x += "<featureType>HAAR</featureType><height>\(c.windowHeight)</height><width>\(c.windowWidth)</width>\n<stageNum>\(n)</stageNum><stages>\n"
    for s in c.stages.prefix(n) {
        x += "<_><maxWeakCount>\(s.trees.count)</maxWeakCount><stageThreshold>\(s.threshold + 1e-5)</stageThreshold><weakClassifiers>\n"
        for t in s.trees {
            let nodes = t.left.indices.map { "\(t.left[$0]) \(t.right[$0]) \(used[t.feature[$0]]!) \(t.threshold[$0])" }.joined(separator: " ")
            x += "<_><internalNodes>\(nodes)</internalNodes><leafValues>\(t.leaves.map { "\($0)" }.joined(separator: " "))</leafValues></_>\n"
        }
        x += "</weakClassifiers></_>\n"
    }
    x += "</stages>\n<features>\n"
    for f in order {
        x += "<_><rects>" + c.features[Int(f)].rects.map { "<_>\($0.x) \($0.y) \($0.w) \($0.h) \($0.weight)</_>" }.joined() + "</rects></_>\n"
    }
    return x + "</features></cascade>\n</opencv_storage>\n"
}
