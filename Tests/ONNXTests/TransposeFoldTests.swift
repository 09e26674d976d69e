// A Keras-style export: an NHWC input transposed to NCHW, a convolution, a transpose back to
// channels-last before the flatten, and MatMul + Add as the dense layer. The importer declares
// the input NCHW and folds the second transpose into the dense weight's columns; the compiled
// plan must equal a naive channels-last computation of the ONNX model.

import GraphIR
import Interop
import XCTest

final class TransposeFoldTests: XCTestCase {
    func kerasStyleModel(w: [Float], b: [Float], w2: [Float], b2: [Float]) -> ONNXModel {
        var m = ONNXModel()
        m.irVersion = 7
        m.opsetImports = [("", 13)]
        var g = ONNXGraph()
        g.name = "keras_style"
        g.inputs = [ONNXValueInfo(name: "input_1", elementType: ONNXDataType.float, shape: [.param("unk__0"), .value(4), .value(4), .value(2)])]
        g.outputs = [ONNXValueInfo(name: "dense", elementType: ONNXDataType.float, shape: [.param("unk__0"), .value(5)])]
        g.initializers = [
            ONNXTensor(name: "conv/kernel", dims: [3, 2, 3, 3], floats: w), ONNXTensor(name: "conv/bias", dims: [3], floats: b),
            ONNXTensor(name: "dense/kernel", dims: [48, 5], floats: w2), ONNXTensor(name: "dense/bias", dims: [5], floats: b2),
            ONNXTensor(name: "shape", dims: [2], int64s: [-1, 48]),
        ]
        g.nodes = [
            ONNXNode(name: "to_nchw", opType: "Transpose", inputs: ["input_1"], outputs: ["t1"], attributes: [ONNXAttribute(name: "perm", value: .ints([0, 3, 1, 2]))]),
            ONNXNode(name: "conv", opType: "Conv", inputs: ["t1", "conv/kernel", "conv/bias"], outputs: ["c"], attributes: [
                ONNXAttribute(name: "kernel_shape", value: .ints([3, 3])), ONNXAttribute(name: "auto_pad", value: .string(Array("SAME_UPPER".utf8)))]),
            ONNXNode(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            ONNXNode(name: "to_nhwc", opType: "Transpose", inputs: ["r"], outputs: ["t2"], attributes: [ONNXAttribute(name: "perm", value: .ints([0, 2, 3, 1]))]),
            ONNXNode(name: "flatten", opType: "Reshape", inputs: ["t2", "shape"], outputs: ["f"]),
            ONNXNode(name: "matmul", opType: "MatMul", inputs: ["f", "dense/kernel"], outputs: ["mm"]),
            ONNXNode(name: "bias", opType: "Add", inputs: ["mm", "dense/bias"], outputs: ["dense"]),
        ]
        m.graph = g
        return m
    }

    func testNHWCInputAndChannelsLastFlattenFoldIntoTheGraph() throws {
        var seed: UInt64 = 7
        func r() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(seed >> 40) % 2001 - 1000) / 1000
        }
        let w = (0..<54).map { _ in r() }, b = (0..<3).map { _ in r() }
        let w2 = (0..<240).map { _ in r() }, b2 = (0..<5).map { _ in r() }
        let n = 3
        let x = (0..<(n * 32)).map { _ in r() }  // NHWC [3, 4, 4, 2]
        // The model as written, channels-last, naively.
        var want = [Double](repeating: 0, count: n * 5)
        for s in 0..<n {
            var f = [Double](repeating: 0, count: 48)
            for h in 0..<4 { for q in 0..<4 { for o in 0..<3 {
                var acc = Double(b[o])
                for c in 0..<2 { for kh in 0..<3 { for kw in 0..<3 {
                    let y = h + kh - 1, z = q + kw - 1
                    guard (0..<4).contains(y), (0..<4).contains(z) else { continue }
                    acc += Double(x[s * 32 + (y * 4 + z) * 2 + c]) * Double(w[((o * 2 + c) * 3 + kh) * 3 + kw])
                } } }
                f[(h * 4 + q) * 3 + o] = max(acc, 0)
            } } }
            for j in 0..<5 {
                var acc = Double(b2[j])
                for i in 0..<48 { acc += f[i] * Double(w2[i * 5 + j]) }
                want[s * 5 + j] = acc
            }
        }
        let imported = try importONNX(kerasStyleModel(w: w, b: b, w2: w2, b2: b2))
        XCTAssertEqual(imported.graph[imported.graph.inputs[0]].type, .batched([2, 4, 4]), "the input is declared NCHW")
        XCTAssertTrue(imported.notes.first?.contains("NHWC") ?? false, "\(imported.notes)")
        XCTAssertEqual(imported.graph.nodes.map(\.op.name), ["conv2d", "relu", "flatten", "dense"])
        // fergc's input is NCHW: the same values, transposed.
        var nchw = [Float](repeating: 0, count: x.count)
        for s in 0..<n { for h in 0..<4 { for q in 0..<4 { for c in 0..<2 {
            nchw[s * 32 + (c * 4 + h) * 4 + q] = x[s * 32 + (h * 4 + q) * 2 + c]
        } } } }
        let plan = try compileImported(imported, batch: n)
        let out = try runPlan(plan, inputs: ["input_1": nchw], batch: n)
        let y = try XCTUnwrap(out[plan.buffers[plan.outputs[0]].name])
        XCTAssertLessThanOrEqual(maxAbsDiff(y, want), 1e-5)
        // Without the fold the result differs: the check above could fail.
        var unfolded = imported
        let wi = try XCTUnwrap(unfolded.weights.firstIndex { $0.shape == [5, 48] })
        unfolded.weights[wi].values = (0..<240).map { w2[($0 % 48) * 5 + $0 / 48] }
        let plain = try runPlan(try compileImported(unfolded, batch: n), inputs: ["input_1": nchw], batch: n)
        XCTAssertGreaterThan(maxAbsDiff(try XCTUnwrap(plain[plan.buffers[plan.outputs[0]].name]), want), 1e-2)
    }

    func testTransposeThatDoesNotCancelIsRefusedNamingTheNode() throws {
        var m = kerasStyleModel(w: [Float](repeating: 0, count: 54), b: [0, 0, 0], w2: [Float](repeating: 0, count: 240), b2: [Float](repeating: 0, count: 5))
        // The second transpose now feeds a convolution-free Relu into the output: no dense to fold into.
        m.graph.nodes = Array(m.graph.nodes[0...3])
        m.graph.outputs = [ONNXValueInfo(name: "t2", elementType: ONNXDataType.float, shape: nil)]
        XCTAssertThrowsError(try importONNX(m)) { e in
            XCTAssertTrue("\(e)".contains("output 't2' is in a transposed layout"), "\(e)")
        }
        var bad = ONNXModel()
        bad.irVersion = 7
        bad.opsetImports = [("", 13)]
        bad.graph.inputs = [ONNXValueInfo(name: "x", elementType: ONNXDataType.float, shape: [.param("N"), .value(3)])]
        bad.graph.outputs = [ONNXValueInfo(name: "y", elementType: ONNXDataType.float, shape: nil)]
        bad.graph.nodes = [ONNXNode(name: "erf1", opType: "Erf", inputs: ["x"], outputs: ["y"])]
        XCTAssertThrowsError(try importONNX(bad)) { e in
            XCTAssertTrue("\(e)".hasPrefix("node 'erf1' (Erf): fergc has no op for ONNX 'Erf'"), "\(e)")
        }
    }

    /// Sizes that would overflow or allocate absurdly are refused before anything is computed.
    func testAbsurdSizesAreRefused() throws {
        func model(_ shape: [ONNXDim], _ nodes: [ONNXNode], _ inits: [ONNXTensor] = []) -> ONNXModel {
            var m = ONNXModel()
            m.irVersion = 7
            m.opsetImports = [("", 13)]
            m.graph.inputs = [ONNXValueInfo(name: "x", elementType: ONNXDataType.float, shape: shape)]
            m.graph.outputs = [ONNXValueInfo(name: "y", elementType: ONNXDataType.float, shape: nil)]
            m.graph.nodes = nodes
            m.graph.initializers = inits
            return m
        }
        let big = Int(Int32.max)
        XCTAssertThrowsError(try importONNX(model([.param("N"), .value(big), .value(big), .value(big)], [ONNXNode(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])]))) { e in
            XCTAssertTrue("\(e)".contains("more than 2^31 elements"), "\(e)")
        }
        let reshape = model([.param("N"), .value(4)], [ONNXNode(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])],
                            [ONNXTensor(name: "s", dims: [3], int64s: [0, 1 << 40, 1 << 40])])
        XCTAssertThrowsError(try importONNX(reshape)) { e in XCTAssertTrue("\(e)".contains("node 'r' (Reshape)"), "\(e)") }
        let pads = model([.param("N"), .value(1), .value(4), .value(4)], [ONNXNode(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: [
            ONNXAttribute(name: "kernel_shape", value: .ints([2, 2])), ONNXAttribute(name: "pads", value: .ints([Int64.max, 0, 0, 0]))])])
        XCTAssertThrowsError(try importONNX(pads)) { e in XCTAssertTrue("\(e)".contains("node 'p' (MaxPool): pads"), "\(e)") }
    }
}
