import Foundation
import XCTest
@testable import NumPyIO

/// One sample array per dtype plus scalars, a 0-size array, and a dotted name.
func sampleArrays() -> [(name: String, array: NDArray)] {
    let f64: [Double] = [1.5, -2.25, 1e300, 0]
    let i64: [Int64] = [-1, 1 << 40, 7]
    var d64 = [UInt8](), di64 = [UInt8]()
    for v in f64 { appendLE(v.bitPattern, to: &d64) }
    for v in i64 { appendLE(UInt64(bitPattern: v), to: &di64) }
    return [
        ("x", NDArray(floats: (0..<24).map { Float($0) * 0.5 - 3 }, shape: [2, 3, 4])),
        ("y", NDArray(ints: [3, -1, 0, Int32.max, Int32.min, 6], shape: [6])),
        ("grad.block1_conv1.weight", NDArray(floats: [0.25, -1, .infinity, 3], shape: [4, 1, 1, 1])),
        ("loss", NDArray(floats: [0.125], shape: [])),
        ("d", NDArray(dtype: .float64, shape: [2, 2], data: d64)),
        ("l", NDArray(dtype: .int64, shape: [3], data: di64)),
        ("u", NDArray(bytes: [0, 1, 127, 128, 255, 9], shape: [3, 2])),
        ("empty", NDArray(floats: [], shape: [0, 5])),
        ("iscalar", NDArray(ints: [42], shape: [])),
    ]
}

func assertSameArrays(_ a: [(name: String, array: NDArray)], _ b: [(name: String, array: NDArray)],
                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.map(\.name), b.map(\.name), file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x.array, y.array, "array \(x.name)", file: file, line: line) }
}

func sameArrays(_ a: [(name: String, array: NDArray)], _ b: [(name: String, array: NDArray)]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.name == $1.name && $0.array == $1.array }
}

/// Builds a .npy file with a hand-written header (padded like numpy) for parser tests.
func npy(header: String, data: [UInt8], major: UInt8 = 1) -> [UInt8] {
    let prefix = major == 1 ? 10 : 12
    var h = Array(header.utf8)
    while (prefix + h.count + 1) % 64 != 0 { h.append(0x20) }
    h.append(0x0A)
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
    if major == 1 { appendLE(UInt16(h.count), to: &out) } else { appendLE(UInt32(h.count), to: &out) }
    return out + h + data
}

func makeTempDir() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("numpyio-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

enum Python {
    /// Runs python3 with `script`; returns (exit status, stdout+stderr).
    static func run(_ script: String, args: [String] = []) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    static let hasNumPy: Bool = (try? run("import numpy"))?.status == 0

    /// Skips the calling test when python3 + numpy are unavailable.
    static func require() throws {
        if !hasNumPy { throw XCTSkip("python3 with numpy is not available") }
    }

    /// Runs `script`, failing the test with its output if it exits non-zero.
    @discardableResult
    static func check(_ script: String, args: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run(script, args: args)
        XCTAssertEqual(r.status, 0, "python failed:\n\(r.output)", file: file, line: line)
        return r.output
    }
}
