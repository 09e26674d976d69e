// The FER2013 reader in small reads: read boundaries inside lines, inside CRLF pairs and
// between gzip members give the same faces as 64 KiB reads (the CSV fuzz target reads every
// input both ways).

import Foundation
@testable import Training
import XCTest

final class FER2013ChunkTests: XCTestCase {
    func testSmallReadsGiveTheSameFaces() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-fer-chunks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows = ["emotion,pixels,Usage", ferRow(2, "Training", seed: 7), ferRow(4, "PublicTest", seed: 8), ferRow(6, "PrivateTest", seed: 9)]
        var checked = 0
        for ending in ["\n", "\r\n", "\r"] {
            let text = Array(rows.joined(separator: ending).utf8)
            // Plain, one gzip member, and two members split inside the second row.
            let cut = text.count / 2
            let variants: [(String, [UInt8])] = [("plain", text), ("gzip", gzipBytes(text)),
                                                 ("two members", gzipBytes(Array(text[..<cut])) + gzipBytes(Array(text[cut...])))]
            for (kind, bytes) in variants {
                let path = dir.appendingPathComponent("f.csv").path
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                let whole = try loadFER2013(path: path)
                XCTAssertEqual(whole[.training].labels + whole[.publicTest].labels + whole[.privateTest].labels, [2, 4, 6], "\(kind) \(ending.debugDescription)")
                for chunk in [1, 2, 3, 5, 64, 4095] {
                    let small = try loadFER2013(path: path, options: LoadOptions(skipBadRows: true), chunk: chunk)
                    XCTAssertEqual(small.skippedRows, 0, "\(kind) \(ending.debugDescription) in reads of \(chunk)")
                    for split in Split.allCases {
                        XCTAssertEqual(small[split].labels, whole[split].labels, "\(kind) \(ending.debugDescription) in reads of \(chunk)")
                        XCTAssertEqual(small[split].pixels, whole[split].pixels, "\(kind) \(ending.debugDescription) in reads of \(chunk)")
                    }
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 54)
    }
}
