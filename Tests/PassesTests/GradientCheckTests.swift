// Finite-difference checks of the whole autodiff pipeline, op by op: build a small graph around
// one op, differentiate it with the autodiff pass, run it in double precision, and compare each
// gradient with central differences of the loss (Caffe's GradientChecker, on the IR).

import GraphIR
import Passes
import Runtime
import XCTest

/// Builds graphs by hand: values get random contents at check time.
struct GraphBuilder {
    var g = Graph(name: "check")
    var wrt: [ValueID] = []

    mutating func input(_ name: String, _ perSample: [Int]) -> ValueID {
        let id = try! g.addValue(Value(name: name, type: .batched(perSample), kind: .input))
        wrt.append(id)
        return id
    }

    mutating func param(_ name: String, _ shape: [Int], trainable: Bool = true, l2: Double = 0) -> ValueID {
        let id = try! g.addValue(Value(name: name, type: .fixed(shape), kind: .parameter(ParameterInfo(initializer: .zeros, trainable: trainable, l2: l2))))
        if trainable { wrt.append(id) }
        return id
    }

    mutating func state(_ name: String, _ shape: [Int]) -> ValueID {
        try! g.addValue(Value(name: name, type: .fixed(shape), kind: .state(.zeros)))
    }

    mutating func node(_ op: Op, _ inputs: [ValueID], _ outputs: [String]) -> [ValueID] {
        try! g.addNode(op, inputs: inputs, outputNames: outputs)
    }

    mutating func op(_ op: Op, _ inputs: ValueID..., name: String) -> ValueID {
        node(op, inputs, [name])[0]
    }

    /// Ends the graph with loss = softmax_cross_entropy(dense(flatten(y), w_out), labels), a
    /// smooth scalar of every element of y.
    mutating func finish(_ y: ValueID) -> Graph {
        var v = y
        if g[v].type.rank != 2 { v = op(.flatten, v, name: "flat") }
        let w = try! g.addValue(Value(name: "w_out", type: .fixed([5, g[v].type.perSample[0]]), kind: .parameter(ParameterInfo(initializer: .zeros, trainable: false))))
        let logits = op(.dense, v, w, name: "logits")
        let labels = try! g.addValue(Value(name: "labels", type: .batched([], .i32), kind: .input))
        let loss = op(.softmaxCrossEntropy, logits, labels, name: "loss")
        g.outputs = [loss]
        g.training = TrainingConfig(loss: "loss", optimizer: .sgd(lr: 0.1, SGDAttrs()))
        return g
    }
}

/// A deterministic generator (xorshift) for test data.
struct TestRandom {
    var state: UInt64
    mutating func next() -> Double {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Double(state >> 11) / Double(1 << 53)
    }
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * next() }
}

/// Runs a differentiated graph `g` (outputs: the loss, then the gradient of each of `wrt`, values
/// of `original`) in double precision with seeded random inputs and weights, and compares each
/// gradient with central differences of the loss on up to `samples` elements per tensor.
func finiteDifferenceCheck(_ g: Graph, original graph: Graph, wrt: [ValueID], positive: Set<String>, samples: Int,
                           batch: Int, file: StaticString, line: UInt) throws {
    let plan = try lowerToPlan(g, maxBatch: batch)
    let ex = try Executor<Double>(plan: plan)
    var rng = TestRandom(state: 0x9E3779B97F4A7C15)
    var values: [Int: [Double]] = [:]
    for (i, b) in plan.buffers.enumerated() where b.role != .intermediate {
        let n = b.elementCount(batch: batch)
        if b.elementType == .i32 {
            ex.setBuffer(i, ints: (0..<n).map { Int32($0 % 5) })
        } else {
            let v = (0..<n).map { _ in positive.contains(b.name) ? rng.uniform(0.5, 1.5) : rng.uniform(-1, 1) }
            values[i] = v
            ex.setBuffer(i, v)
        }
    }
    func loss() throws -> Double {
        ex.runCounter = 0  // the same dropout masks on every run
        try ex.run(batch: batch)
        return ex.buffer(plan.outputs[0])[0]
    }
    _ = try loss()
    let analytic = plan.outputs.dropFirst().map { ex.buffer($0) }
    for (k, v) in wrt.enumerated() {
        let index = g.id(named: graph[v].name)!.index
        var x = values[index]!
        let h = 1e-6
        for s in 0..<min(samples, x.count) {
            let e = (s * 7919) % x.count
            let saved = x[e]
            x[e] = saved + h; ex.setBuffer(index, x); let plus = try loss()
            x[e] = saved - h; ex.setBuffer(index, x); let minus = try loss()
            x[e] = saved; ex.setBuffer(index, x)
            let numeric = (plus - minus) / (2 * h)
            let a = analytic[k][e]
            let err = abs(a - numeric) / max(1e-4, abs(a) + abs(numeric))
            XCTAssertLessThan(err, 1e-4, "d loss / d \(graph[v].name)[\(e)]: analytic \(a), numeric \(numeric)", file: file, line: line)
        }
    }
}

final class GradientCheckTests: XCTestCase {
    let batch = 3

    /// Differentiates `graph` w.r.t. `wrt`, then checks every gradient against central
    /// differences on up to `samples` elements per tensor.
    func check(_ graph: Graph, wrt: [ValueID], positive: Set<String> = [], samples: Int = 12,
               training: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        var g = training ? try trainingForm(graph) : graph
        g = try regularize(g)
        g = try autodiff(g, wrt: wrt)
        g.outputs = [g.id(named: g.training!.loss)!] + wrt.map { g.id(named: gradientName(of: g[$0].name))! }
        try g.verify()
        try finiteDifferenceCheck(g, original: graph, wrt: wrt, positive: positive, samples: samples, batch: batch, file: file, line: line)
    }

    func testConv2DSameStride1WithBias() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 5, 5])
        let w = b.param("w", [3, 2, 3, 3]), bias = b.param("b", [3])
        let y = b.op(.conv2d(Conv2DAttrs(stride: 1, padding: .same)), x, w, bias, name: "y")
        try check(b.finish(y), wrt: b.wrt)
    }

    func testConv2DValidStride2NonSquare() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 7, 6])
        let w = b.param("w", [3, 2, 3, 2])
        let y = b.op(.conv2d(Conv2DAttrs(stride: 2, padding: .valid)), x, w, name: "y")
        try check(b.finish(y), wrt: b.wrt)
    }

    func testConv2DSameStride2() throws {
        var b = GraphBuilder()
        let x = b.input("x", [1, 6, 5])
        let w = b.param("w", [2, 1, 3, 3]), bias = b.param("b", [2])
        let y = b.op(.conv2d(Conv2DAttrs(stride: 2, padding: .same)), x, w, bias, name: "y")
        try check(b.finish(y), wrt: b.wrt)
    }

    func testDenseReluLeakyRelu() throws {
        var b = GraphBuilder()
        let x = b.input("x", [6])
        let w = b.param("w", [4, 6]), bias = b.param("b", [4])
        let h = b.op(.dense, x, w, bias, name: "h")
        let r = b.op(.relu, h, name: "r")
        let l = b.op(.leakyRelu(alpha: 0.2), h, name: "l")
        let s = b.op(.add, r, l, name: "s")
        try check(b.finish(s), wrt: b.wrt)
    }

    func testBatchnormTraining() throws {
        var b = GraphBuilder()
        let x = b.input("x", [3, 2, 2])
        let gamma = b.param("bn.gamma", [3]), beta = b.param("bn.beta", [3])
        let mean = b.state("bn.running_mean", [3]), variance = b.state("bn.running_var", [3])
        let y = b.op(.batchnorm(BatchNormAttrs()), x, gamma, beta, mean, variance, name: "y")
        try check(b.finish(y), wrt: b.wrt)
    }

    func testBatchnormFrozenUsesRunningStatistics() throws {
        var b = GraphBuilder()
        let x = b.input("x", [4])
        let gamma = b.param("bn.gamma", [4], trainable: false), beta = b.param("bn.beta", [4], trainable: false)
        let mean = b.state("bn.running_mean", [4]), variance = b.state("bn.running_var", [4])
        let y = b.op(.batchnorm(BatchNormAttrs()), x, gamma, beta, mean, variance, name: "y")
        try check(b.finish(y), wrt: b.wrt, positive: ["bn.running_var"])
    }

    func testDropoutTraining() throws {
        var b = GraphBuilder()
        let x = b.input("x", [20])
        let y = b.op(.dropout(rate: 0.4), x, name: "y")
        try check(b.finish(y), wrt: b.wrt, samples: 20)
    }

    func testMaxpoolAndAvgpoolWithPadding() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 5, 5])
        let m = b.op(.maxpool(PoolAttrs(size: 2, stride: 2, padding: .same)), x, name: "m")
        let a = b.op(.avgpool(PoolAttrs(size: 3, stride: 1, padding: .same)), m, name: "a")
        try check(b.finish(a), wrt: b.wrt, samples: 25)
    }

    func testSoftmaxAndReshape() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 3])
        let f = b.op(.flatten, x, name: "f")
        let s = b.op(.softmax, f, name: "s")
        let r = b.op(.reshape(shape: [3, 2]), s, name: "r")
        try check(b.finish(r), wrt: b.wrt)
    }

    func testAddMulConcatAndGradientAccumulation() throws {
        var b = GraphBuilder()
        let x = b.input("x", [2, 3, 3])
        let w = b.param("w", [2, 2, 1, 1])
        let c = b.op(.conv2d(Conv2DAttrs()), x, w, name: "c")
        let s = b.op(.add, x, c, name: "s")          // x has two consumers
        let m = b.op(.mul, s, x, name: "m")          // and a third
        let k = b.op(.concat(axis: 1), m, s, name: "k")
        let t = b.op(.scale(factor: 0.5), k, name: "t")
        try check(b.finish(t), wrt: b.wrt)
    }

    func testL2RegularizerGradient() throws {
        var b = GraphBuilder()
        let x = b.input("x", [3])
        let w = b.param("w", [2, 3], l2: 0.05)
        let y = b.op(.dense, x, w, name: "y")
        try check(b.finish(y), wrt: b.wrt)
    }
}
