// A model using every forward op the export writes (conv with same/valid/stride 2, leaky relu,
// add, concat, batchnorm, avgpool and maxpool with TensorFlow 'same' pads, flatten, dense,
// scale, softmax): exported, then run by ONNX Runtime and imported back; both agree with the
// fergc plan.

import Foundation
import Frontend
import GraphIR
import Interop
import NumPyIO
import Passes
import Runtime
import XCTest

let everyOpSource = """
model every_op
input x: f32[N, 2, 8, 8]
c1 = conv2d(x, filters=4, activation=relu)
c2 = conv2d(x, filters=4, activation=leaky_relu, alpha=0.2)
s = add(c1, c2)
cat = concat(c1, s, axis=1)
bn = batchnorm(cat, epsilon=1e-3)
p = avgpool(bn, size=3, stride=2, padding=same)
m = maxpool(p, size=2, stride=1, padding=valid)
c3 = conv2d(m, filters=3, kernel=3, stride=2, padding=same)
c4 = conv2d(c3, filters=3, kernel=1, padding=valid)
f = flatten(c4)
d = dense(f, units=5)
sc = scale(d, factor=0.5)
probs = softmax(sc)
output probs
"""

final class EveryOpRoundTripTests: XCTestCase {
    let n = 3

    func compiled() throws -> (Plan, [Float]) {
        let g = try Frontend.compile(source: everyOpSource, file: "every_op.graph")
        var o = CompileOptions()
        o.batch = n
        o.probe = false
        o.convAlgorithms = .direct
        o.seed = 3
        var plan = try compile(g, o).plan
        // Batchnorm statistics that are not the identity.
        for name in plan.parameters.keys where name.hasPrefix("bn.running") {
            plan.parameters[name] = plan.parameters[name]!.indices.map { name.hasSuffix("var") ? 0.5 + Float($0) / 8 : Float($0) / 10 - 0.3 }
        }
        var seed: UInt64 = 11
        let x = (0..<(n * 128)).map { _ -> Float in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(seed >> 40) % 1000) / 500 - 1
        }
        return (plan, x)
    }

    func testExportImportRoundTripOfEveryOp() throws {
        let (plan, x) = try compiled()
        let model = try exportONNX(plan)
        let ops = Set(model.graph.nodes.map(\.opType))
        XCTAssertEqual(ops, ["Conv", "Relu", "LeakyRelu", "Add", "Concat", "BatchNormalization", "AveragePool", "MaxPool", "Flatten", "Gemm", "Mul", "Softmax"])
        XCTAssertEqual(model.graph.outputs.map(\.name), ["probs"], "a softmax output needs no second softmax")
        let pool = try XCTUnwrap(model.graph.nodes.first { $0.opType == "AveragePool" })
        XCTAssertEqual(pool.attribute("pads"), .ints([0, 0, 1, 1]), "TensorFlow 'same': the odd pixel at the end")
        let want = try runPlan(plan, inputs: ["x": x], batch: n)["probs"]!
        let imported = try importONNX(try decodeONNXModel(encodeONNXModel(model)))
        let back = try runPlan(try compileImported(imported, batch: n, algorithms: .direct), inputs: ["x": x], batch: n)
        let got = try XCTUnwrap(back["probs"])
        XCTAssertLessThanOrEqual(maxAbsDiff(got, want.map(Double.init)), 1e-6)
    }

    func testONNXRuntimeAgreesOnEveryOp() throws {
        let python = try onnxPython()
        let (plan, x) = try compiled()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-everyop-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let onnx = dir.appendingPathComponent("m.onnx").path, xs = dir.appendingPathComponent("x.npy").path, ys = dir.appendingPathComponent("y.npy").path
        try writeONNXModel(try exportONNX(plan), to: onnx)
        try Data(NumPyIO.writeNPY(NDArray(floats: x, shape: [n, 2, 8, 8]))).write(to: URL(fileURLWithPath: xs))
        let script = """
        import sys, numpy as np, onnx, onnxruntime as ort
        onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)
        s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        np.save(sys.argv[3], s.run(["probs"], {"x": np.load(sys.argv[2])})[0].astype(np.float32))
        """
        let (status, output) = try runProcess(python, ["-c", script, onnx, xs, ys])
        XCTAssertEqual(status, 0, output)
        let ort = try NumPyIO.readNPY(Array(try Data(contentsOf: URL(fileURLWithPath: ys)))).floats
        let want = try runPlan(plan, inputs: ["x": x], batch: n)["probs"]!
        XCTAssertLessThanOrEqual(maxAbsDiff(want, ort.map(Double.init)), 1e-5)
    }
}
