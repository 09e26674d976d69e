import XCTest
@testable import NumPyIO

final class NPYTests: XCTestCase {
    func testNPYRoundTripEveryDType() throws {
        for (name, a) in sampleArrays() {
            let bytes = NumPyIO.writeNPY(a)
            XCTAssertEqual(bytes.count % 64, a.data.count % 64, "header of \(name) is 64-byte aligned")
            XCTAssertEqual(try NumPyIO.readNPY(bytes, name: name), a, name)
        }
    }

    func testConversions() throws {
        let arrays = Dictionary(uniqueKeysWithValues: sampleArrays().map { ($0.name, $0.array) })
        XCTAssertEqual(arrays["d"]?.floats, [1.5, -2.25, .infinity, 0])
        XCTAssertEqual(arrays["l"]?.ints, [-1, Int32.max, 7])
        XCTAssertEqual(arrays["l"]?.floats, [-1, Float(1 << 40), 7])
        XCTAssertEqual(arrays["u"]?.ints, [0, 1, 127, 128, 255, 9])
        XCTAssertEqual(arrays["y"]?.floats, [3, -1, 0, Float(Int32.max), Float(Int32.min), 6])
        XCTAssertEqual(arrays["loss"]?.count, 1)
        XCTAssertEqual(arrays["empty"]?.count, 0)
        XCTAssertEqual(arrays["x"]?.count, 24)
        let f = NDArray(floats: [2, -3, 1e20, .nan, 2.5], shape: [5])
        XCTAssertEqual(f.ints, [2, -3, Int32.max, 0, 2])
        XCTAssertEqual(try NDArray(floats: [2, -3], shape: [2]).exactInts(), [2, -3])
        XCTAssertThrowsError(try f.exactInts(name: "f"))
        XCTAssertThrowsError(try arrays["l"]!.exactInts())
    }

    func testHeaderVariants() throws {
        let data: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]  // [1.0, 2.0] as <f4
        let headers = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}",
            "{\"fortran_order\":False,\"shape\":(2 ,),\"descr\":\"<f4\" , }",
            "{'descr':'<f4','fortran_order':False,'shape':(2L,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }",
        ]
        for h in headers {
            for major: UInt8 in [1, 2, 3] {
                let a = try NumPyIO.readNPY(npy(header: h, data: data, major: major))
                XCTAssertEqual(a.shape, [2], h)
                XCTAssertEqual(a.floats, [1, 2], h)
            }
        }
        let scalar = try NumPyIO.readNPY(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': ()}", data: [5, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.ints, [5])
        let u8 = try NumPyIO.readNPY(npy(header: "{'descr': '<u1', 'fortran_order': False, 'shape': (1, 2)}", data: [7, 8]))
        XCTAssertEqual(u8.dtype, .uint8)
    }

    func testHeaderErrorsNameTheArray() {
        func expectError(_ header: String, _ data: [UInt8] = [], contains: String, major: UInt8 = 1) {
            XCTAssertThrowsError(try NumPyIO.readNPY(npy(header: header, data: data, major: major), name: "w.npy")) { e in
                let msg = (e as? NumPyError)?.message ?? ""
                XCTAssertTrue(msg.hasPrefix("w.npy: "), msg)
                XCTAssertTrue(msg.contains(contains), "'\(msg)' should mention '\(contains)'")
            }
        }
        expectError("{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}", [0, 0, 0, 0], contains: "fortran_order")
        expectError("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}", [0, 0, 0, 0], contains: "big-endian")
        expectError("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", [0, 0, 0, 0, 0, 0, 0, 0], contains: "object")
        expectError("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", [0, 0, 0, 0, 0, 0, 0, 0], contains: "unsupported dtype '<c8'")
        expectError("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", [0, 0, 0, 0], contains: "structured")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", [0, 0, 0, 0], contains: "data is 4 bytes")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 2)}", contains: "invalid shape")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,)}", contains: "too large")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", contains: "integer too large")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", contains: "non-negative")
        expectError("{'descr': '<f4', 'shape': (1,)}", [0, 0, 0, 0], contains: "missing key 'fortran_order'")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", [0, 0, 0, 0], contains: "unexpected key")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", [0, 0, 0, 0], contains: "after the dict")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (1,", contains: "bad .npy header")
        expectError("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", [0, 0, 0, 0], contains: "version 4.0", major: 4)
        XCTAssertThrowsError(try NumPyIO.readNPY(Array("not numpy at all".utf8)))
    }

    func testTruncatedAndCorruptedNPYNeverCrash() throws {
        for (name, a) in sampleArrays() {
            let bytes = NumPyIO.writeNPY(a)
            for n in 0..<bytes.count {
                XCTAssertThrowsError(try NumPyIO.readNPY(Array(bytes[0..<n]), name: name), "\(name) cut at \(n)")
            }
            for i in 0..<min(bytes.count, 128) {  // header region; data flips are just other values
                for mask: UInt8 in [0x01, 0x20, 0x80, 0xFF] {
                    var b = bytes
                    b[i] ^= mask
                    _ = try? NumPyIO.readNPY(b, name: name)
                }
            }
        }
    }
}
