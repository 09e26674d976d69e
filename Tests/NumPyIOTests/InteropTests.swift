import Foundation
import XCTest
@testable import NumPyIO

/// Cross-checks against real numpy (skipped when python3 + numpy are not installed).
final class InteropTests: XCTestCase {
    func testReadsNumPyOutput() throws {
        try Python.require()
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Python.check("""
            import numpy as np, sys, os
            from numpy.lib import format as fmt
            d = sys.argv[1]
            arrs = dict(x=np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 4, y=np.array([3, -1, 6], dtype=np.int32),
                        d=np.array(2.5), l=np.array([[1, -2], [1 << 40, 4]], dtype=np.int64),
                        u=np.arange(250, 256, dtype=np.uint8), big=np.ones((64, 64), dtype=np.float32))
            arrs['grad.block1_conv1.weight'] = np.full((4, 1, 3, 3), -0.5, dtype=np.float32)
            np.savez(os.path.join(d, 'stored.npz'), **arrs)
            np.savez_compressed(os.path.join(d, 'compressed.npz'), **arrs)
            for v in [(1, 0), (2, 0), (3, 0)]:
                with open(os.path.join(d, 'v%d.npy' % v[0]), 'wb') as f:
                    fmt.write_array(f, arrs['x'], version=v)
            """, args: [dir])
        let x = (0..<24).map { Float($0) / 4 }
        for file in ["stored.npz", "compressed.npz"] {
            let arrays = try NumPyIO.readNPZ(path: dir + "/" + file)
            XCTAssertEqual(arrays.map(\.name), ["x", "y", "d", "l", "u", "big", "grad.block1_conv1.weight"], file)
            let a = Dictionary(uniqueKeysWithValues: arrays.map { ($0.name, $0.array) })
            XCTAssertEqual(a["x"], NDArray(floats: x, shape: [2, 3, 4]))
            XCTAssertEqual(a["y"], NDArray(ints: [3, -1, 6], shape: [3]))
            XCTAssertEqual(a["d"]?.dtype, .float64)
            XCTAssertEqual(a["d"]?.shape, [])
            XCTAssertEqual(a["d"]?.floats, [2.5])
            XCTAssertEqual(a["l"]?.dtype, .int64)
            XCTAssertEqual(a["l"]?.ints, [1, -2, Int32.max, 4])
            XCTAssertEqual(a["u"], NDArray(bytes: [250, 251, 252, 253, 254, 255], shape: [6]))
            XCTAssertEqual(a["big"]?.floats, [Float](repeating: 1, count: 4096))
            XCTAssertEqual(a["grad.block1_conv1.weight"]?.floats, [Float](repeating: -0.5, count: 36))
        }
        for v in 1...3 {
            let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: dir + "/v\(v).npy")))
            XCTAssertEqual(bytes[6], UInt8(v))
            XCTAssertEqual(try NumPyIO.readNPY(bytes), NDArray(floats: x, shape: [2, 3, 4]), "version \(v)")
        }
    }

    func testNumPyReadsOurFiles() throws {
        try Python.require()
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (file, compressed, zip64) in [("s.npz", false, false), ("c.npz", true, false), ("z.npz", true, true)] {
            try atomicWrite(NumPyIO.writeNPZ(sampleArrays(), compressed: compressed, forceZip64: zip64), to: dir + "/" + file)
        }
        try atomicWrite(NumPyIO.writeNPY(sampleArrays()[0].array), to: dir + "/x.npy")
        try Python.check("""
            import numpy as np, sys, zipfile
            d = sys.argv[1]
            for f in ['s.npz', 'c.npz', 'z.npz']:
                with np.load(d + '/' + f) as z:
                    assert list(z.keys()) == ['x', 'y', 'grad.block1_conv1.weight', 'loss', 'd', 'l', 'u', 'empty', 'iscalar'], list(z.keys())
                    assert z['x'].dtype == np.float32 and z['x'].shape == (2, 3, 4)
                    assert np.array_equal(z['x'].ravel(), np.arange(24, dtype=np.float32) * 0.5 - 3)
                    assert z['y'].dtype == np.int32 and list(z['y']) == [3, -1, 0, 2**31 - 1, -2**31, 6]
                    assert z['grad.block1_conv1.weight'].shape == (4, 1, 1, 1)
                    assert z['loss'].shape == () and z['loss'] == 0.125
                    assert z['d'].dtype == np.float64 and z['d'].tolist() == [[1.5, -2.25], [1e300, 0]]
                    assert z['l'].dtype == np.int64 and list(z['l']) == [-1, 1 << 40, 7]
                    assert z['u'].dtype == np.uint8 and z['u'].tolist() == [[0, 1], [127, 128], [255, 9]]
                    assert z['empty'].shape == (0, 5) and z['iscalar'] == 42
                assert zipfile.ZipFile(d + '/' + f).testzip() is None
            x = np.load(d + '/x.npy')
            assert x.shape == (2, 3, 4) and x[1, 2, 3] == 23 * 0.5 - 3
            print('ok')
            """, args: [dir])
    }
}
