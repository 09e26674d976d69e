// Decoding: PNG and JPEG of the same photo agree, gray follows OpenCV's BGR2GRAY weights,
// PGM/PPM read, and damaged files give errors naming the file.

import ImageIO
import Training
import Vision
import XCTest

final class ImageIOTests: XCTestCase {
    func testPNGAndJPEGOfTheAstronautAgree() throws {
        let photos = try sharedPhotos()
        let png = try ImageIO.read(path: "\(photos)/astronaut.png"), jpg = try ImageIO.read(path: "\(photos)/astronaut.jpg")
        XCTAssertEqual([png.width, png.height, png.channels], [512, 512, 3])
        XCTAssertEqual([jpg.width, jpg.height, jpg.channels], [512, 512, 3])
        // Quality 90: a few levels apart on average.
        let diff = zip(png.pixels, jpg.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }
        XCTAssertLessThan(Double(diff) / Double(png.pixels.count), 4)
        let camera = try ImageIO.read(path: "\(photos)/camera.png")
        XCTAssertEqual(camera.channels, 1)
    }

    func testGrayWeights() {
        // (4899 R + 9617 G + 1868 B + 8192) >> 14, by hand.
        let rgb: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30, 255, 255, 255]
        let g = Image(width: 5, height: 1, channels: 3, pixels: rgb).gray().pixels
        // 255*4899+8192 = 1257437 >> 14 = 76; 2460527 >> 14 = 150; 484532 >> 14 = 29;
        // 10*4899 + 200*9617 + 30*1868 + 8192 = 2036622 >> 14 = 124; white stays 255.
        XCTAssertEqual(g, [76, 150, 29, 124, 255])
    }

    func testPNMAndOurPNGRoundTrip() throws {
        let pixels = (0..<(7 * 5)).map { UInt8(($0 * 37) % 256) }
        let pgm = Array("P5\n# comment\n7 5\n255\n".utf8) + pixels
        XCTAssertEqual(try ImageIO.decode(pgm).pixels, pixels)
        let rgb = (0..<(4 * 3 * 3)).map { UInt8(($0 * 11) % 256) }
        let ppm = Array("P6 4 3 255 ".utf8) + rgb
        let img = try ImageIO.decode(ppm)
        XCTAssertEqual([img.width, img.height, img.channels], [4, 3, 3])
        XCTAssertEqual(img.pixels, rgb)
        // 16-bit PGM: scaled to 8 bits.
        let wide = Array("P5 2 1 65535\n".utf8) + [0xFF, 0xFF, 0x00, 0x00]
        XCTAssertEqual(try ImageIO.decode(wide).pixels, [255, 0])
        // The project's PNG encoder, read back by libpng.
        let png = encodePNG(pixels, width: 7, height: 5, color: .gray)
        XCTAssertEqual(try ImageIO.decode(png).pixels, pixels)
    }

    func testDamagedFilesAreClearErrors() throws {
        let photos = try sharedPhotos()
        let jpg = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(photos)/astronaut.jpg")))
        let cases: [(String, [UInt8], String)] = [
            ("truncated.jpg", Array(jpg.prefix(jpg.count / 2)), "cannot decode the JPEG"),
            ("header.jpg", Array(jpg.prefix(20)), "JPEG"),
            ("x.png", Array("this is text\n".utf8), "unknown content"),
            ("empty.png", [], "empty file"),
            ("short.pgm", Array("P5 48 48 255\n".utf8) + [1, 2, 3], "truncated"),
            ("huge.pgm", Array("P5 100000 100000 255\n".utf8), "larger than fergc reads"),
        ]
        for (name, bytes, message) in cases {
            XCTAssertThrowsError(try ImageIO.decode(bytes, path: name), name) { e in
                let text = "\(e)"
                XCTAssertTrue(text.hasPrefix("\(name): "), text)
                XCTAssertTrue(text.contains(message), "\(name): \(text)")
            }
        }
        XCTAssertThrowsError(try ImageIO.read(path: "/nonexistent/photo.jpg")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/photo.jpg: cannot open"), "\(e)")
        }
        XCTAssertThrowsError(try ImageIO.read(path: "/tmp")) { e in XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)") }
    }

    func testCropRuleRegion() {
        let r = CropRule(margin: 0.1, filter: .bilinear)
        // A 100x80 box grows to a 120x120 square around its centre (150, 140).
        XCTAssertEqual(r.region(for: Box(x: 100, y: 100, width: 100, height: 80), width: 1000, height: 1000), Box(x: 90, y: 80, width: 120, height: 120))
        // Near a corner it shifts inside; larger than the image it shrinks.
        XCTAssertEqual(r.region(for: Box(x: 0, y: 0, width: 50, height: 50), width: 1000, height: 1000), Box(x: 0, y: 0, width: 60, height: 60))
        XCTAssertEqual(r.region(for: Box(x: 0, y: 0, width: 50, height: 50), width: 40, height: 30), Box(x: 10, y: 0, width: 30, height: 30))
        // Bilinear resize of a constant image stays constant; a 96 -> 48 halving averages pairs.
        let flat = [UInt8](repeating: 77, count: 96 * 96)
        let out = flat.withUnsafeBufferPointer { r.crop(GrayView(pixels: $0.baseAddress!, width: 96, height: 96, stride: 96), box: Box(x: 0, y: 0, width: 96, height: 96), side: 48) }
        XCTAssertEqual(Set(out), [77])
        let stripes = (0..<(96 * 96)).map { UInt8($0 % 2 == 0 ? 100 : 200) }
        let half = stripes.withUnsafeBufferPointer { CropRule(margin: 0, filter: .bilinear).crop(GrayView(pixels: $0.baseAddress!, width: 96, height: 96, stride: 96), box: Box(x: 0, y: 0, width: 96, height: 96), side: 48) }
        XCTAssertEqual(Set(half), [150])
    }
}
