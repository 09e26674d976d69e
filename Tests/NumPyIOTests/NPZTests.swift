import Foundation
import XCTest
@testable import NumPyIO

final class NPZTests: XCTestCase {
    func testRoundTripStoredCompressedAndZip64() throws {
        let arrays = sampleArrays()
        for compressed in [false, true] {
            for zip64 in [false, true] {
                let bytes = NumPyIO.writeNPZ(arrays, compressed: compressed, forceZip64: zip64)
                assertSameArrays(try NumPyIO.readNPZ(bytes), arrays)
            }
        }
        let big = [("z", NDArray(floats: [Float](repeating: 1, count: 10_000), shape: [100, 100]))]
        XCTAssertLessThan(NumPyIO.writeNPZ(big, compressed: true).count, 2_000)
        assertSameArrays(try NumPyIO.readNPZ(NumPyIO.writeNPZ(big, compressed: true)), big)
        assertSameArrays(try NumPyIO.readNPZ(NumPyIO.writeNPZ([], compressed: false)), [])
    }

    func testCRC32() {
        let v = Array("123456789".utf8).withUnsafeBytes { NumPyIO.crc32($0) }
        XCTAssertEqual(v, 0xCBF4_3926)
        XCTAssertEqual([UInt8]().withUnsafeBytes { NumPyIO.crc32($0) }, 0)
    }

    func testCRCMismatchNamesTheMember() throws {
        let arrays = [("a", NDArray(ints: [1, 2], shape: [2])), ("grad.w", NDArray(floats: [1, 2, 3], shape: [3]))]
        var bytes = NumPyIO.writeNPZ(arrays, compressed: false)
        let npyB = NumPyIO.writeNPY(arrays[1].1)
        guard let at = (0...(bytes.count - npyB.count)).first(where: { bytes[$0..<($0 + npyB.count)].elementsEqual(npyB) })
        else { return XCTFail("member data not found") }
        bytes[at + npyB.count - 1] ^= 0x40  // last data byte of grad.w
        XCTAssertThrowsError(try NumPyIO.readNPZ(bytes, file: "t.npz")) { e in
            XCTAssertEqual((e as? NumPyError)?.message.hasPrefix("t.npz: member 'grad.w.npy': CRC-32 mismatch"), true, "\(e)")
        }
        XCTAssertThrowsError(try NumPyIO.readNPZ(Array(bytes.prefix(100)), file: "t.npz")) { e in
            XCTAssertEqual((e as? NumPyError)?.message.hasPrefix("t.npz: "), true, "\(e)")
        }
    }

    /// Every truncation throws; every single-byte corruption throws or (if it hit an ignorable
    /// field such as a timestamp) still yields exactly the original arrays.
    func testTruncationsAndByteFlipsNeverCrash() throws {
        let arrays = [("x", NDArray(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])),
                      ("grad.b.c", NDArray(ints: [7, 8], shape: [2])),
                      ("s", NDArray(floats: [0.5], shape: []))]
        var ignored = 0
        for compressed in [false, true] {
            for zip64 in [false, true] {
                let bytes = NumPyIO.writeNPZ(arrays, compressed: compressed, forceZip64: zip64)
                for n in 0..<bytes.count {
                    XCTAssertThrowsError(try NumPyIO.readNPZ(Array(bytes[0..<n])), "cut at \(n)")
                }
                for i in 0..<bytes.count {
                    for mask: UInt8 in [0x01, 0x10, 0x80, 0xFF] {
                        var b = bytes
                        b[i] ^= mask
                        if let r = try? NumPyIO.readNPZ(b) {
                            XCTAssertTrue(sameArrays(r, arrays), "flip \(mask) at \(i) (compressed \(compressed), zip64 \(zip64)) returned wrong data")
                            ignored += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(ignored, 0)  // e.g. timestamps and version fields really are ignorable
    }

    func testImplausibleSizesAreRejected() throws {
        // Hand-made central directory entry claiming a 4 GB deflated member inside a tiny archive.
        var bytes = NumPyIO.writeNPZ([("a", NDArray(ints: [1], shape: [1]))], compressed: true, forceZip64: true)
        // The central ZIP64 extra starts with the uncompressed size: find tag 0x0001 after the central header.
        guard let cd = (0..<(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual([0x50, 0x4B, 1, 2]) })
        else { return XCTFail("no central directory") }
        let extra = cd + 46 + "a.npy".utf8.count
        XCTAssertEqual(bytes[extra], 1)
        bytes[extra + 4 + 3] = 0x40  // uncompressed size |= 1 << 30: within memory, past deflate's 1032:1
        XCTAssertThrowsError(try NumPyIO.readNPZ(bytes, file: "big.npz")) { e in
            XCTAssertTrue("\(e)".contains("implausible"), "\(e)")
        }
        bytes[extra + 4 + 7] = 0x40  // |= 1 << 62: more than any process may allocate
        XCTAssertThrowsError(try NumPyIO.readNPZ(bytes, file: "big.npz")) { e in
            XCTAssertTrue("\(e)".contains("more than this process may allocate"), "\(e)")
            XCTAssertTrue("\(e)".contains("refused before inflating"), "\(e)")
        }
        bytes[extra + 4 + 7] = 0xFF  // > Int.max
        XCTAssertThrowsError(try NumPyIO.readNPZ(bytes, file: "big.npz"))
    }

    func testReadsParityFixture() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ParityTests/Fixtures/mini_tuned_parity.npz").standardized.path
        let arrays = try NumPyIO.readNPZ(path: path)
        let byName = Dictionary(arrays.map { ($0.name, $0.array) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(arrays.first?.name, "x")
        XCTAssertEqual(byName["x"]?.dtype, .float32)
        XCTAssertEqual(byName["x"]?.shape, [4, 1, 48, 48])
        XCTAssertEqual(byName["y"]?.dtype, .int32)
        XCTAssertEqual(byName["y"]?.shape, [4])
        XCTAssertEqual(byName["loss"]?.shape, [])
        XCTAssertEqual(byName["grad.block1_conv1.weight"]?.shape, [4, 1, 3, 3])
        XCTAssertEqual(byName["x"]?.floats.count, 4 * 48 * 48)
    }

    func testWriteNPZToPath() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.npz"
        try NumPyIO.writeNPZ(sampleArrays(), compressed: true, to: path)
        assertSameArrays(try NumPyIO.readNPZ(path: path), sampleArrays())
        XCTAssertThrowsError(try NumPyIO.readNPZ(path: dir + "/missing.npz")) { e in
            XCTAssertTrue("\(e)".contains("missing.npz"), "\(e)")
        }
    }
}
