// The dense layers of bf16 training (BF16Conv.swift's `bf16DenseForward` / `bf16DenseBackward`
// on amx.c's packed tiles): the packers put every rounded value where the tile layout says,
// on the AVX-512 path and the plain C one; the product equals a Double product of the rounded
// operands; the forward, input and weight gradients equal Double references computed from the
// definitions (y = x w^T + b, dx = dz w, dw = dz^T x) on rounded operands, for shapes that are
// not multiples of the tiles, batches of 1 to 37 and one or two threads; and the executor's
// dense steps in bf16 agree with its f32 steps. Each product test runs on every bf16 unit the CPU
// has (AMX, AVX512_BF16: `onEachBF16Unit`) and skips on CPUs with neither.
import XCTest
import CKernels
@testable import Runtime

final class BF16DenseTests: RuntimeTestCase {
    func bf(_ v: Float) -> Double { Double(Float(bitPattern: UInt32(fk_bf16_round(v)) << 16)) }
    func up(_ v: Int, _ m: Int) -> Int { (v + m - 1) / m * m }

    /// Every packed value at its place: A[m/16][k/32][m%16][k%32], B pairs [n/16][k/32][(k%32)/2][n%16],
    /// from a matrix read straight and one read transposed, zeros in the padding.
    func testPackersPutEveryValueWhereTheLayoutSays() {
        var rng = TestRNG(seed: 7)
        for simd in [2, 0] {
            fk_limit_simd(Int32(simd))
            defer { fk_limit_simd(2) }
            for (rows, cols) in [(5, 7), (16, 32), (21, 45), (40, 70)] {
                let src = rng.array(rows * cols, -3, 3).map(Float.init)
                for transposed in [false, true] {
                    // The logical matrix is rows x cols; stored row-major, or as its transpose.
                    let (rs, cs) = transposed ? (1, rows) : (cols, 1)
                    let stored: [Float] = transposed
                        ? (0..<(cols * rows)).map { src[($0 % rows) * cols + $0 / rows] } : src
                    func value(_ r: Int, _ c: Int) -> Float { stored[r * rs + c * cs] }
                    let kb = up(cols, 32) / 32
                    var a = [UInt16](repeating: 0xdead, count: up(rows, 16) * up(cols, 32))
                    stored.withUnsafeBufferPointer { s in
                        fk_bf16_pack_a(&a, s.baseAddress, rs, cs, Int32(rows), Int32(cols), 0, Int32(up(rows, 16)))
                    }
                    for r in 0..<up(rows, 16) {
                        for c in 0..<up(cols, 32) {
                            let got = a[((r / 16 * kb + c / 32) * 16 + r % 16) * 32 + c % 32]
                            let want: UInt16 = r < rows && c < cols ? fk_bf16_round(value(r, c)) : 0
                            if got != want { XCTFail("A simd \(simd) \(rows)x\(cols) t=\(transposed) (\(r), \(c)): \(got) != \(want)"); return }
                        }
                    }
                    // The same matrix as B (K = rows, N = cols), in two column ranges as two threads would.
                    let kbB = up(rows, 32) / 32
                    var b = [UInt32](repeating: 0xdeadbeef, count: up(cols, 16) * up(rows, 32) / 2)
                    let half = up(cols, 16) / 16 / 2 * 16
                    stored.withUnsafeBufferPointer { s in
                        fk_bf16_pack_b(&b, s.baseAddress, rs, cs, Int32(rows), Int32(cols), 0, Int32(half))
                        fk_bf16_pack_b(&b, s.baseAddress, rs, cs, Int32(rows), Int32(cols), Int32(half), Int32(up(cols, 16)))
                    }
                    for k in stride(from: 0, to: up(rows, 32), by: 2) {
                        for n in 0..<up(cols, 16) {
                            let got = b[((n / 16 * kbB + k / 32) * 16 + (k % 32) / 2) * 16 + n % 16]
                            let lo: UInt32 = k < rows && n < cols ? UInt32(fk_bf16_round(value(k, n))) : 0
                            let hi: UInt32 = k + 1 < rows && n < cols ? UInt32(fk_bf16_round(value(k + 1, n))) : 0
                            if got != lo | hi << 16 { XCTFail("B simd \(simd) \(rows)x\(cols) t=\(transposed) (\(k), \(n))"); return }
                        }
                    }
                }
            }
        }
    }

    /// The tile product against a Double product of the same rounded operands (exact products,
    /// sums of at most Kp terms in f32: relative error a few 1e-6), ranges split as threads do,
    /// both loop orders.
    func testTileProductEqualsTheProductOfTheRoundedOperands() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 11)
            for (M, N, K) in [(1, 1, 1), (7, 20, 33), (16, 16, 32), (37, 50, 70), (64, 96, 128), (33, 17, 300)] {
                let a = rng.array(M * K).map(Float.init), b = rng.array(K * N).map(Float.init)
                let kp = up(K, 32)
                var ap = [UInt16](repeating: 0, count: up(M, 16) * kp)
                var bp = [UInt32](repeating: 0, count: up(N, 16) * kp / 2)
                fk_bf16_pack_a(&ap, a, Int(K), 1, Int32(M), Int32(K), 0, Int32(up(M, 16)))
                fk_bf16_pack_b(&bp, b, Int(N), 1, Int32(K), Int32(N), 0, Int32(up(N, 16)))
                var want = [Double](repeating: 0, count: M * N), scale = [Double](repeating: 0, count: M * N)
                for m in 0..<M {
                    for n in 0..<N {
                        for k in 0..<K {
                            let p = bf(a[m * K + k]) * bf(b[k * N + n])
                            want[m * N + n] += p; scale[m * N + n] += abs(p)
                        }
                    }
                }
                for nOuter: Int32 in [0, 1] {
                    let ldc = N + 3
                    var c = [Float](repeating: .nan, count: M * ldc)
                    // Two "threads": rows split at a multiple of 32 (or columns, with the columns outside).
                    let splitM = nOuter == 0 ? min(M, 32) : M, splitN = nOuter == 1 ? min(N, 32) : N
                    for (m0, m1, n0, n1) in [(0, splitM, 0, splitN), (splitM, M, 0, splitN), (0, M, splitN, N)] where m1 > m0 && n1 > n0 {
                        XCTAssertEqual(fk_bf16_gemm(&c, ldc, ap, bp, Int32(kp), Int32(m0), Int32(m1), Int32(n0), Int32(n1), nOuter), 1)
                    }
                    var worst = 0.0
                    for m in 0..<M {
                        for n in 0..<N {
                            let err = abs(Double(c[m * ldc + n]) - want[m * N + n]) / max(scale[m * N + n], 1e-30)
                            worst = max(worst, err.isNaN ? .infinity : err)
                        }
                        for n in N..<ldc { XCTAssert(c[m * ldc + n].isNaN, "column \(n) of row \(m) written") }
                    }
                    XCTAssertLessThan(worst, 1e-5, "\(unit) \(M)x\(N)x\(K) nOuter \(nOuter)")
                }
            }
        }
    }

    /// Forward, input gradient and weight gradient of a dense layer against their definitions in
    /// Double on rounded operands, with one and two threads and batches that fill no tile.
    func testDenseForwardAndBackwardMatchTheirDefinitions() throws {
        try onEachBF16Unit { unit in
            var rng = TestRNG(seed: 3)
            for (I, O, n) in [(16, 16, 1), (45, 21, 5), (70, 40, 37), (100, 64, 32)] {
                let x = rng.array(n * I).map(Float.init), w = rng.array(O * I).map(Float.init)
                let b = rng.array(O).map(Float.init), dz = rng.array(n * O).map(Float.init)
                for threads in [1, 2] {
                    let fwd = BF16Role.denseForward(inFeatures: I, outFeatures: O)
                    let bwd = BF16Role.denseBackward(inFeatures: I, outFeatures: O, inputGrad: true, weightGrad: true)
                    var pf = [UInt16](repeating: 0, count: fwd.packedWeightCount)
                    var pb = [UInt16](repeating: 0, count: bwd.packedWeightCount)
                    let bytes = max(bf16DenseLayout(fwd, samples: n).bytes, bf16DenseLayout(bwd, samples: n).bytes)
                    let scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                    defer { scratch.deallocate() }
                    scratch.initializeMemory(as: UInt8.self, repeating: 0xff, count: bytes)
                    bf16PackDenseWeights(&pf, w, inFeatures: I, outFeatures: O, transposed: false, threads: threads)
                    bf16PackDenseWeights(&pb, w, inFeatures: I, outFeatures: O, transposed: true, threads: threads)
                    var z = [Float](repeating: .nan, count: n * O)
                    XCTAssertTrue(bf16DenseForward(&z, x, pf, b, n: n, inFeatures: I, outFeatures: O, threads: threads,
                                                   scratch: scratch))
                    // The output gradient where the backward expects it (the scratch's first part).
                    dz.withUnsafeBufferPointer {
                        scratch.assumingMemoryBound(to: Float.self).update(from: $0.baseAddress!, count: n * O)
                    }
                    var dx = [Float](repeating: .nan, count: n * I), dw = [Float](repeating: .nan, count: O * I)
                    XCTAssertTrue(bf16DenseBackward(dx: &dx, dw: &dw, x: x, w: pb, n: n, inFeatures: I, outFeatures: O,
                                                    threads: threads, scratch: scratch))
                    func check(_ got: [Float], _ count: Int, _ what: String,
                               _ terms: (Int) -> [(Double, Double)], plus: (Int) -> Double = { _ in 0 }) {
                        var worst = 0.0
                        for j in 0..<count {
                            let t = terms(j)
                            let want = t.reduce(plus(j)) { $0 + $1.0 * $1.1 }
                            let scale = t.reduce(abs(plus(j))) { $0 + abs($1.0 * $1.1) }
                            let err = abs(Double(got[j]) - want) / max(scale, 1e-30)
                            worst = max(worst, err.isNaN ? .infinity : err)
                        }
                        XCTAssertLessThan(worst, 1e-5, "\(unit) \(what) I=\(I) O=\(O) n=\(n) threads=\(threads)")
                    }
                    check(z, n * O, "y = x w^T + b", { j in
                        let s = j / O, o = j % O
                        return (0..<I).map { (self.bf(x[s * I + $0]), self.bf(w[o * I + $0])) }
                    }, plus: { Double(b[$0 % O]) })
                    check(dx, n * I, "dx = dz w", { j in
                        let s = j / I, i = j % I
                        return (0..<O).map { (self.bf(dz[s * O + $0]), self.bf(w[$0 * I + i])) }
                    })
                    check(dw, O * I, "dw = dz^T x", { j in
                        let o = j / I, i = j % I
                        return (0..<n).map { (self.bf(dz[$0 * O + o]), self.bf(x[$0 * I + i])) }
                    })
                }
            }
        }
    }

    func testDenseRolesOnlyForLayersWideEnoughForTiles() {
        let e = FusedEpilogue(bias: true, relu: true, batchnorm: .none, epsilon: 0)
        XCTAssertEqual(bf16Role(of: .fusedTrain(.dense(inFeatures: 4608, outFeatures: 2048), e), mode: "training", maxChunk: 8),
                       .denseForward(inFeatures: 4608, outFeatures: 2048))
        XCTAssertEqual(bf16Role(of: .fusedTrainGrad(.dense(inFeatures: 64, outFeatures: 32), e, inputGrad: false,
                                                    weightGrad: true), mode: "training", maxChunk: 8),
                       .denseBackward(inFeatures: 64, outFeatures: 32, inputGrad: false, weightGrad: true))
        // The 7-class output layer stays f32 (a product of 7 rows would fill half a tile).
        XCTAssertNil(bf16Role(of: .fusedTrain(.dense(inFeatures: 2048, outFeatures: 7), e), mode: "training", maxChunk: 8))
        XCTAssertNil(bf16Role(of: .fusedTrainGrad(.dense(inFeatures: 8, outFeatures: 64), e, inputGrad: true,
                                                  weightGrad: true), mode: "training", maxChunk: 8))
        // Without the input gradient nothing is packed.
        XCTAssertEqual(BF16Role.denseBackward(inFeatures: 64, outFeatures: 32, inputGrad: false, weightGrad: true)
            .packedWeightCount, 0)
    }
}
