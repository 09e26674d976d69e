// The pretrained VGG16 weights in the paper's Figure 8 model: the compiled plan's block4_pool
// on real faces against a direct convolution written here, in double precision.

import Foundation
import GraphIR
import NumPyIO
import Passes
import Runtime
import Training
import XCTest

final class PretrainedTests: XCTestCase {
    func testKerasParameterCounts() throws {
        let p = try model("Models/vgg16_pretrained.graph").summary()
        XCTAssertEqual([p.paramsTotal, p.paramsTrainable, p.paramsNonTrainable], [21_301_575, 19_557_895, 1_743_680])
        let f = try model("Models/vgg16_finetuned.graph").summary()
        XCTAssertEqual([f.paramsTotal, f.paramsTrainable, f.paramsNonTrainable], [21_301_575, 21_293_383, 8_192])
    }

    func testBlock4PoolMatchesADirectConvolution() throws {
        try requirePretrained()
        var graph = try model("Models/vgg16_pretrained.graph")
        graph.training = nil
        graph.outputs = [try XCTUnwrap(graph.id(named: "block4_pool"))]
        var weights = initialWeights(graph, seed: 1)
        let file = try InitTensors.read(pretrainedPath)
        let (report, loaded) = try planInit(model: graph, file: file)
        XCTAssertEqual(report.loaded.count, 20)
        XCTAssertEqual(report.unused, [])
        weights.merge(loaded) { $1 }

        let faces = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.publicTest]))[.publicTest]
        let n = 2
        let x = (0..<n).flatMap { i in faces.pixels[(i * 2304)..<((i + 1) * 2304)].map(Float.init) }  // raw 0..255

        var options = CompileOptions()
        options.batch = n
        options.weights = weights
        options.probe = false
        let plan = try compile(graph, options).plan
        let ex = try Executor<Float>(plan: plan)
        for (i, b) in plan.buffers.enumerated() { if let v = plan.parameters[b.name] { ex.setBuffer(i, v) } }
        ex.setBuffer(try XCTUnwrap(plan.buffer(named: "x")), x)
        try ex.run(batch: n)
        let got = ex.buffer(plan.outputs[0])
        XCTAssertEqual(got.count, n * 512 * 3 * 3)

        // The reference: gray -> 3 channels, then each block's convolutions and its pool.
        var expected: [Double] = []
        for i in 0..<n {
            var t = Tensor3(c: 3, h: 48, w: 48, values: [])
            let face = x[(i * 2304)..<((i + 1) * 2304)].map(Double.init)
            t.values = face + face + face
            for (block, convs) in [(1, 2), (2, 2), (3, 3), (4, 3)] {
                for k in 1...convs {
                    let name = "block\(block)_conv\(k)"
                    let w = try XCTUnwrap(file.tensors[name + ".weight"]), b = try XCTUnwrap(file.tensors[name + ".bias"])
                    t = referenceConvReLU(t, weight: w.values.map(Double.init), bias: b.values.map(Double.init), out: w.shape![0])
                }
                t = referenceMaxPool(t)
            }
            expected += t.values
        }
        let scale = expected.map(abs).max()!
        XCTAssertGreaterThan(scale, 0)
        let worst = zip(got, expected).map { abs(Double($0) - $1) }.max()!
        print("block4_pool: largest |value| \(scale), largest difference \(worst) (\(worst / scale) of it)")
        XCTAssertLessThanOrEqual(worst / scale, 1e-5)
    }
}

/// One image, channel-first.
struct Tensor3 {
    var c: Int, h: Int, w: Int
    var values: [Double]
}

/// 3x3 cross-correlation, stride 1, zero padding 1 ("same"), then relu: the textbook loops.
func referenceConvReLU(_ x: Tensor3, weight: [Double], bias: [Double], out: Int) -> Tensor3 {
    var y = Tensor3(c: out, h: x.h, w: x.w, values: [Double](repeating: 0, count: out * x.h * x.w))
    let (c, h, w) = (x.c, x.h, x.w)
    x.values.withUnsafeBufferPointer { xs in
        weight.withUnsafeBufferPointer { ws in
            y.values.withUnsafeMutableBufferPointer { ys in
                for o in 0..<out {
                    for i in 0..<h {
                        for j in 0..<w {
                            var s = bias[o]
                            for ci in 0..<c {
                                for di in 0..<3 {
                                    let r = i + di - 1
                                    if r < 0 || r >= h { continue }
                                    for dj in 0..<3 {
                                        let q = j + dj - 1
                                        if q < 0 || q >= w { continue }
                                        s += ws[((o * c + ci) * 3 + di) * 3 + dj] * xs[(ci * h + r) * w + q]
                                    }
                                }
                            }
                            ys[(o * h + i) * w + j] = max(s, 0)
                        }
                    }
                }
            }
        }
    }
    return y
}

/// 2x2 max pooling, stride 2.
func referenceMaxPool(_ x: Tensor3) -> Tensor3 {
    var y = Tensor3(c: x.c, h: x.h / 2, w: x.w / 2, values: [])
    for ch in 0..<x.c {
        for i in 0..<y.h {
            for j in 0..<y.w {
                var m = -Double.infinity
                for di in 0..<2 { for dj in 0..<2 { m = max(m, x.values[(ch * x.h + 2 * i + di) * x.w + 2 * j + dj]) } }
                y.values.append(m)
            }
        }
    }
    return y
}
