// Training in bf16 (`compute = bf16` in the train block): the training plan carries it, the
// step computes the convolutions and the dense layers of 16+ units on the CPU's bf16 unit (AMX,
// or AVX512_BF16) and stays close to the f32 step without being it, runs are deterministic and
// resume bitwise, and with no bf16 unit the same model trains bitwise as in f32. The kernels
// themselves are checked against naive references in RuntimeTests/BF16TrainTests.

import CKernels
import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
@testable import Training
import XCTest

private func source(compute: String) -> String {
    """
    model bf16train
    input x: f32[N, 1, 48, 48]
    input labels: i32[N]
    c1 = conv2d(x, filters=16, kernel=3, padding=same, activation=relu)
    p1 = maxpool(c1, size=2, stride=2)
    c2 = conv2d(p1, filters=32, kernel=3, padding=same, bias=false)
    c2_bn = batchnorm(c2)
    c2_relu = relu(c2_bn)
    p2 = maxpool(c2_relu, size=4, stride=4)
    c3 = conv2d(p2, filters=32, kernel=3, padding=same, activation=relu)
    p3 = maxpool(c3, size=2, stride=2)
    f = flatten(p3)
    h = dense(f, units=32, activation=relu)
    h_bn = batchnorm(h)
    logits = dense(h_bn, units=7)
    loss = softmax_cross_entropy(logits, labels)
    output logits, loss
    train {
      loss = loss
      optimizer = adam(lr=1e-3)
      batch = 16
      epochs = 2
      seed = 3
      input_scale = 0.00392156862745098
      compute = \(compute)
    }
    """
}

final class BF16TrainingTests: XCTestCase {
    override func setUp() {
        super.setUp()
        fk_limit_bf16(fk_bf16_any_unit_limit())
    }

    override func tearDown() {
        fk_limit_bf16(2)
        super.tearDown()
    }

    private func train(compute: String, epochs: Int = 2, resumeAfter steps: Int? = nil,
                       bf16Unit: Bool = true) throws -> (tensors: [String: [Float]], note: String?) {
        fk_limit_bf16(bf16Unit ? fk_bf16_any_unit_limit() : 0)
        defer { fk_limit_bf16(fk_bf16_any_unit_limit()) }
        let data = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.training, .publicTest]))
        let m = try model(source: source(compute: compute))
        let dir = temporaryDirectory("bf16train")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        if let steps {
            var first = TrainOptions(epochs: epochs, batchSize: 16, seed: 3, outDir: dir)
            first.maxSteps = steps
            let t = try Trainer(model: m, data: data, options: first)
            _ = try t.run { _ in }
            var o = TrainOptions(epochs: epochs, batchSize: 16, seed: 3, outDir: dir)
            o.resume = true
            let r = try Trainer(model: m, data: data, options: o)
            _ = try r.run { _ in }
            return (try Checkpoint.read(r.lastCheckpointPath).tensors, r.computeNote)
        }
        let t = try Trainer(model: m, data: data, options: TrainOptions(epochs: epochs, batchSize: 16, seed: 3, outDir: dir))
        _ = try t.run { _ in }
        // The run's report says what it computed in.
        _ = try writeRunReport(dir: dir)
        let report = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        XCTAssertEqual(report.contains("Compute: `compute = bf16`"), compute == "bf16")
        // What this CPU ran, not what the block asked, is in the segments table (f32 on an Intel
        // core without AMX even when the block asks bf16).
        let ran = briefCompute(t.computeRecord)
        XCTAssertTrue(report.contains("| \(ran) |\n"), "\(ran): \(report)")
        return (try Checkpoint.read(t.lastCheckpointPath).tensors, t.computeNote)
    }

    private func weights(_ t: [String: [Float]]) -> [String: [Float]] {
        t.filter { $0.key.hasSuffix(".weight") && !$0.key.contains("adam") }
    }

    func testTheTrainingPlanCarriesTheComputeType() throws {
        var o = CompileOptions()
        o.mode = .training
        o.batch = 4
        o.probe = false
        let bf = try compile(try model(source: source(compute: "bf16")), o).plan
        XCTAssertEqual(bf.metadata.computeDType, "bf16")
        let f = try compile(try model(source: source(compute: "f32")), o).plan
        XCTAssertNil(f.metadata.computeDType)
        // The bf16 steps on AMX: the forwards of c2 and c3 (16 and 32 input channels; c1 has one),
        // the backwards of c2 and c3 (c1's has no input gradient and one input channel), and the
        // forward and backward of the dense layer h (32 units); the 7-unit output layer stays f32.
        // On AVX512_BF16 alone, not c2 (a 24x24 plane: f32 Winograd is faster; c3's 6x6 is bf16).
        func roles(_ level: Int32) -> [String] {
            bf.steps.filter { bf16Role(of: $0.kernel, mode: "training", maxChunk: 4, level: level) != nil }.map(\.name)
        }
        XCTAssertEqual(roles(2).count, 6, "\(roles(2))")
        XCTAssertEqual(roles(1), roles(2).filter { !$0.contains("c2") && $0 != "grad.p1" }, "\(roles(1))")
        XCTAssertEqual(roles(1).count, 4, "\(roles(1))")
        // What an executor allocates for it is what the plan's summary says.
        let ex = try Executor<Float>(plan: bf)
        ex.threads = 2
        ex.setBuffer(try XCTUnwrap(bf.buffer(named: "x")), (0..<(4 * 48 * 48)).map { Float(($0 * 37) % 255) / 255 })
        ex.setBuffer(try XCTUnwrap(bf.buffer(named: "labels")), ints: [0, 3, 6, 2])
        ex.setBuffer(try XCTUnwrap(bf.buffer(named: "learning_rate")), [1e-3])
        try ex.run(batch: 4)
        XCTAssertEqual(ex.workspaceBytesAllocated, executorWorkspaceBytes(bf, threads: 2))
        // An inference plan of the same model stays f32.
        o.mode = .inference
        XCTAssertNil(try compile(try model(source: source(compute: "bf16")), o).plan.metadata.computeDType)
    }

    func testAnUnknownComputeTypeIsALocatedError() {
        XCTAssertThrowsError(try model(source: source(compute: "bf61"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("test.graph:25:"), text)
            XCTAssertTrue(text.contains("f32 or bf16"), text)
            XCTAssertTrue(text.contains("did you mean 'bf16'"), text)
        }
    }

    func testBF16TrainingIsCloseToF32DeterministicAndResumesBitwise() throws {
        guard let unit = bf16ComputeUnit else { throw XCTSkip("this CPU \(bf16ComputeMissing): bf16 training runs in f32 here") }
        let f32 = try train(compute: "f32")
        let bf = try train(compute: "bf16")
        XCTAssertEqual(bf.note?.hasPrefix("compute: bf16 on \(unit) "), true, bf.note ?? "nil")
        XCTAssertNil(f32.note)
        let (a, b) = (weights(f32.tensors), weights(bf.tensors))
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        var differ = false
        for (name, wf) in a {
            let wb = try XCTUnwrap(b[name])
            if wf != wb { differ = true }
            // Two epochs of Adam from the same start on 1,084 faces: the runs drift apart (measured
            // 0.11-0.15 of the weights' norm), nowhere near what a wrong product would do
            // (unrelated weights of the same scale are about 1.4 apart).
            var d2 = 0.0, n2 = 0.0
            for (u, v) in zip(wf, wb) { d2 += Double(u - v) * Double(u - v); n2 += Double(u) * Double(u) }
            XCTAssertLessThan((d2 / max(n2, 1e-30)).squareRoot(), 0.3, name)
            XCTAssertTrue(wb.allSatisfy(\.isFinite), name)
        }
        XCTAssertTrue(differ, "bf16 products differ from f32 ones")
        // The same run again, and the run stopped in its second epoch and resumed: bitwise.
        XCTAssertEqual(try train(compute: "bf16").tensors, bf.tensors)
        XCTAssertEqual(try train(compute: "bf16", resumeAfter: 70).tensors, bf.tensors)
    }

    func testWithoutABF16UnitTheModelTrainsBitwiseAsF32() throws {
        let f32 = try train(compute: "f32", epochs: 1)
        let off = try train(compute: "bf16", epochs: 1, bf16Unit: false)
        XCTAssertEqual(off.tensors, f32.tensors)
        XCTAssertEqual(off.note, "compute: f32 (the train block asks for bf16; this CPU \(bf16ComputeMissing))")
        XCTAssertTrue(["has neither AMX nor AVX512_BF16",
                       "has no usable AMX, and its AVX512_BF16 dot product runs at half the f32 rate on this Intel core"]
                        .contains(bf16ComputeMissing), bf16ComputeMissing)
    }
}
