// Convolution: im2col + gemm against the direct loop, and gradient checks of input, weight and
// bias gradients over several geometries.
import XCTest
@testable import Runtime

/// TensorFlow 'same' or 'valid' geometry for a (C, H, W) input.
func convGeometry(c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int, stride: Int, same: Bool) -> ConvGeometry {
    let oh = same ? (h + stride - 1) / stride : (h - kh) / stride + 1
    let ow = same ? (w + stride - 1) / stride : (w - kw) / stride + 1
    let padH = same ? max((oh - 1) * stride + kh - h, 0) : 0
    let padW = same ? max((ow - 1) * stride + kw - w, 0) : 0
    return ConvGeometry(inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelHeight: kh,
                        kernelWidth: kw, stride: stride, padTop: padH / 2, padLeft: padW / 2,
                        outHeight: oh, outWidth: ow)
}

let testConvGeometries: [(String, ConvGeometry)] = [
    ("3x3 same s1 non-square", convGeometry(c: 2, h: 5, w: 4, o: 3, kh: 3, kw: 3, stride: 1, same: true)),
    ("3x3 same s2", convGeometry(c: 2, h: 5, w: 6, o: 2, kh: 3, kw: 3, stride: 2, same: true)),
    ("2x3 valid s1", convGeometry(c: 2, h: 4, w: 5, o: 2, kh: 2, kw: 3, stride: 1, same: false)),
    ("3x3 valid s2", convGeometry(c: 1, h: 7, w: 6, o: 2, kh: 3, kw: 3, stride: 2, same: false)),
    ("1x1", convGeometry(c: 3, h: 3, w: 2, o: 2, kh: 1, kw: 1, stride: 1, same: true)),
    ("4x4 same s2 even kernel", convGeometry(c: 1, h: 6, w: 5, o: 2, kh: 4, kw: 4, stride: 2, same: true)),
]

final class ConvTests: RuntimeTestCase {
    func im2colMatchesNaive<T: BLASReal>(_ type: T.Type, tol: Double) {
        var rng = TestRNG(seed: 1)
        let n = 2
        for (name, g) in testConvGeometries {
            let x = Buf<T>(rng.array(n * g.inChannels * g.inHeight * g.inWidth).map { T($0) })
            let w = Buf<T>(rng.array(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth).map { T($0) })
            let b = Buf<T>(rng.array(g.outChannels).map { T($0) })
            let count = n * g.outChannels * g.outHeight * g.outWidth
            let fast = Buf<T>(zeros: count), naive = Buf<T>(zeros: count)
            conv2dForward(fast.p, x.c, w.c, b.c, n: n, g)
            conv2dForwardNaive(naive.p, x.c, w.c, b.c, n: n, g)
            assertClose(fast.array, naive.array, tol: tol, "\(T.self) \(name) with bias")
            let workspace = Buf<T>(zeros: im2colCount(g))
            conv2dForward(fast.p, x.c, w.c, nil, n: n, g, workspace: workspace.p)
            conv2dForwardNaive(naive.p, x.c, w.c, nil, n: n, g)
            assertClose(fast.array, naive.array, tol: tol, "\(T.self) \(name) without bias")
        }
    }

    func testIm2colMatchesNaiveDouble() { im2colMatchesNaive(Double.self, tol: 1e-12) }
    func testIm2colMatchesNaiveFloat() { im2colMatchesNaive(Float.self, tol: 1e-5) }

    func testSamePaddingByHand() {
        // 1x3x3 input, 2x2 kernel of ones, 'same' stride 1: pad after only, so y[i,j] sums
        // x[i..i+1, j..j+1] within bounds.
        let g = convGeometry(c: 1, h: 3, w: 3, o: 1, kh: 2, kw: 2, stride: 1, same: true)
        XCTAssertEqual(g.padTop, 0); XCTAssertEqual(g.padLeft, 0)
        let x = DBuf([1, 2, 3, 4, 5, 6, 7, 8, 9]), w = DBuf([1, 1, 1, 1]), y = DBuf(zeros: 9)
        conv2dForward(y.p, x.c, w.c, nil, n: 1, g)
        XCTAssertEqual(y.array, [12, 16, 9, 24, 28, 15, 15, 17, 9])
    }

    func testConvGradients() {
        var rng = TestRNG(seed: 2)
        let n = 2
        for (name, g) in testConvGeometries {
            let xCount = n * g.inChannels * g.inHeight * g.inWidth
            let wCount = g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth
            let yCount = n * g.outChannels * g.outHeight * g.outWidth
            let c = GradCase(
                name: "conv2d \(name)",
                inputs: [rng.array(xCount), rng.array(wCount), rng.array(g.outChannels)],
                forward: { v in
                    let x = DBuf(v[0]), w = DBuf(v[1]), b = DBuf(v[2]), y = DBuf(zeros: yCount)
                    conv2dForward(y.p, x.c, w.c, b.c, n: n, g)
                    return y.array
                },
                backward: { v, dyValues in
                    let x = DBuf(v[0]), w = DBuf(v[1]), dy = DBuf(dyValues)
                    let dx = DBuf(zeros: xCount), dw = DBuf(zeros: wCount), db = DBuf(zeros: g.outChannels)
                    conv2dBackwardInput(dx.p, dy.c, w.c, n: n, g)
                    conv2dBackwardWeight(dw.p, dy.c, x.c, n: n, g)
                    biasBackward(db.p, dy.c, n: n, channels: g.outChannels, spatial: g.outHeight * g.outWidth)
                    return [dx.array, dw.array, db.array]
                })
            checkGradients(c)
        }
    }
}
