// The FER2013 reader: the Kaggle format with all three usages, gzip, bad rows named by line.

import CZlib
import Foundation
import Training
import XCTest

/// A CSV row: emotion, 2304 pixels derived from a seed, usage.
func ferRow(_ emotion: Int, _ usage: String, seed: Int) -> String {
    let pixels = (0..<2304).map { String(($0 * 7 + seed * 13) % 256) }.joined(separator: " ")
    return "\(emotion),\(pixels),\(usage)"
}

func gzipBytes(_ data: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    deflateInit2_(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    var out = [UInt8](repeating: 0, count: data.count + 1024)
    var input = data
    input.withUnsafeMutableBufferPointer { inBuf in
        out.withUnsafeMutableBufferPointer { outBuf in
            stream.next_in = inBuf.baseAddress
            stream.avail_in = UInt32(inBuf.count)
            stream.next_out = outBuf.baseAddress
            stream.avail_out = UInt32(outBuf.count)
            deflate(&stream, Z_FINISH)
        }
    }
    let n = Int(stream.total_out)
    deflateEnd(&stream)
    return Array(out[0..<n])
}

final class FER2013Tests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-fer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ text: String, _ name: String = "f.csv", gzip: Bool = false) throws -> String {
        let url = dir.appendingPathComponent(name)
        let bytes = Array(text.utf8)
        try Data(gzip ? gzipBytes(bytes) : bytes).write(to: url)
        return url.path
    }

    let threeSplits = ["emotion,pixels,Usage", ferRow(0, "Training", seed: 1), ferRow(3, "Training", seed: 2),
                       ferRow(6, "PublicTest", seed: 3), ferRow(5, "PrivateTest", seed: 4), ferRow(1, "PrivateTest", seed: 5)]

    func testReadsAllThreeUsagesPlainAndGzip() throws {
        for gz in [false, true] {
            let path = try write(threeSplits.joined(separator: "\n") + "\n", gz ? "f.csv.gz" : "f.csv", gzip: gz)
            let d = try loadFER2013(path: path)
            XCTAssertEqual(d[.training].labels, [0, 3])
            XCTAssertEqual(d[.publicTest].labels, [6])
            XCTAssertEqual(d[.privateTest].labels, [5, 1])
            XCTAssertEqual(d[.training].pixels.count, 2 * 2304)
            XCTAssertEqual(d[.privateTest].pixels[1], UInt8((7 + 4 * 13) % 256))
        }
    }

    func testSplitFilterAndCRLFAndMissingFinalNewline() throws {
        let path = try write(threeSplits.joined(separator: "\r\n"))
        let d = try loadFER2013(path: path, options: LoadOptions(splits: [.privateTest]))
        XCTAssertEqual(d[.training].count, 0)
        XCTAssertEqual(d[.privateTest].labels, [5, 1])
    }

    func testFileWithoutUsageColumnIsAllTraining() throws {
        let rows = ["emotion,pixels", "4," + ferRow(0, "", seed: 1).split(separator: ",")[1]]
        let d = try loadFER2013(path: try write(rows.joined(separator: "\n")))
        XCTAssertEqual(d[.training].labels, [4])
    }

    func testBadRowsAreNamedByLine() throws {
        let cases: [(String, String)] = [
            ("9," + ferRow(0, "Training", seed: 1).dropFirst(2), "emotion must be an integer 0..6"),
            (ferRow(1, "Validation", seed: 1), "Usage must be Training, PublicTest or PrivateTest"),
            ("2,1 2 3,Training", "expected 2304 pixels (48x48), found 3"),
            ("2," + String(repeating: "300 ", count: 2304) + ",Training", "larger than 255"),
            ("2,12 x 4,Training", "found 'x'"),
            ("2,Training", "expected 3 fields"),
        ]
        for (row, message) in cases {
            let path = try write([threeSplits[0], threeSplits[1], row, threeSplits[2]].joined(separator: "\n"))
            XCTAssertThrowsError(try loadFER2013(path: path)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("\(path):3: "), text)
                XCTAssertTrue(text.contains(message), "\(text) lacks \(message)")
                XCTAssertTrue(text.contains("--skip-bad-rows"), text)
            }
            let d = try loadFER2013(path: path, options: LoadOptions(skipBadRows: true))
            XCTAssertEqual(d.skippedRows, 1)
            XCTAssertEqual(d[.training].count + d[.publicTest].count, 2)
            XCTAssertTrue(d.skippedExamples[0].contains(":3: "))
        }
    }

    func testHeaderAndFileErrors() throws {
        XCTAssertThrowsError(try loadFER2013(path: try write("")))  { XCTAssertTrue("\($0)".contains("empty")) }
        XCTAssertThrowsError(try loadFER2013(path: try write("a,b,c\n1,2,3"))) { XCTAssertTrue("\($0)".contains("emotion")) }
        XCTAssertThrowsError(try loadFER2013(path: dir.appendingPathComponent("missing.csv").path)) { XCTAssertTrue("\($0)".contains("cannot open")) }
    }

    func testTruncatedGzipIsAnError() throws {
        let full = gzipBytes(Array((threeSplits.joined(separator: "\n") + "\n").utf8))
        let url = dir.appendingPathComponent("t.csv.gz")
        try Data(full.prefix(full.count / 2)).write(to: url)
        XCTAssertThrowsError(try loadFER2013(path: url.path)) { XCTAssertTrue("\($0)".contains("truncated") || "\($0)".contains("corrupt"), "\($0)") }
    }

    func testEmbeddedSampleIsStratifiedAndSmall() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Data/fer2013-sample.csv.gz").path
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        XCTAssertLessThanOrEqual(size, 3_000_000)
        let d = try loadFER2013(path: path)
        XCTAssertGreaterThan(d[.training].count, 800)
        XCTAssertGreaterThan(d[.publicTest].count, 150)
        // Every class is present in both splits.
        for split in [Split.training, .publicTest] {
            XCTAssertEqual(Set(d[split].labels).count, 7, "\(split)")
        }
    }
}
