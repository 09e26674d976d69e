// The fused kernels against the unfused kernels they stand for, in Float and Double, through
// the executor (so the slot layout and validation are exercised too). The gradient checks of
// the fused backward are in PassesTests (FusedNumericsTests), on graphs.

import XCTest
@testable import Runtime

final class FusedKernelTests: RuntimeTestCase {
    let g = ConvGeometry(inChannels: 2, inHeight: 5, inWidth: 5, outChannels: 3, kernelHeight: 3, kernelWidth: 3,
                         stride: 1, padTop: 1, padLeft: 1, outHeight: 5, outWidth: 5)

    /// Buffers: x, w, b, gamma, beta, mean, var, then y (fused) and the unfused chain's values.
    func plans(_ placement: BatchnormPlacement) -> (fused: Plan, unfused: Plan) {
        let s = g.outHeight * g.outWidth
        var buffers = [
            BufferDesc(name: "x", perSample: [2, 5, 5], batched: true, role: .input),
            BufferDesc(name: "w", perSample: [3, 2, 3, 3], batched: false, role: .parameter),
            BufferDesc(name: "b", perSample: [3], batched: false, role: .parameter),
            BufferDesc(name: "gamma", perSample: [3], batched: false, role: .parameter),
            BufferDesc(name: "beta", perSample: [3], batched: false, role: .parameter),
            BufferDesc(name: "mean", perSample: [3], batched: false, role: .state),
            BufferDesc(name: "var", perSample: [3], batched: false, role: .state),
        ]
        for name in ["y", "z", "t"] { buffers.append(BufferDesc(name: name, perSample: [3, 5, 5], batched: true, role: .intermediate)) }
        let e = FusedEpilogue(bias: true, relu: true, batchnorm: placement, epsilon: 1e-3)
        let fused = Plan(name: "fused", buffers: buffers,
                         steps: [Step(name: "y", kernel: .fused(.conv2d(g), e),
                                       inputs: placement == .none ? [0, 1, 2] : [0, 1, 2, 3, 4, 5, 6], outputs: [7])],
                         maxBatch: 2, outputs: [7])
        let bn = Kernel.batchnormInference(channels: 3, spatial: s, epsilon: 1e-3)
        var steps = [Step(name: "z", kernel: .conv2d(g, bias: true), inputs: [0, 1, 2], outputs: [8])]
        switch placement {
        case .none: steps.append(Step(name: "y", kernel: .relu, inputs: [8], outputs: [7]))
        case .beforeRelu:
            steps.append(Step(name: "t", kernel: bn, inputs: [8, 3, 4, 5, 6], outputs: [9]))
            steps.append(Step(name: "y", kernel: .relu, inputs: [9], outputs: [7]))
        case .afterRelu:
            steps.append(Step(name: "t", kernel: .relu, inputs: [8], outputs: [9]))
            steps.append(Step(name: "y", kernel: bn, inputs: [9, 3, 4, 5, 6], outputs: [7]))
        }
        return (fused, Plan(name: "unfused", buffers: buffers, steps: steps, maxBatch: 2, outputs: [7]))
    }

    func compare<T: BLASReal>(_: T.Type, _ placement: BatchnormPlacement, tolerance: Double) throws {
        let (fused, unfused) = plans(placement)
        var outputs: [[T]] = []
        for plan in [fused, unfused] {
            let ex = try Executor<T>(plan: plan)
            var rng = TestRNG(seed: 7)
            for i in 0...6 {
                let lo: Double = i == 6 ? 0.5 : -1
                ex.setBuffer(i, rng.array(plan.buffers[i].elementCount(batch: 2), lo, 1.5).map { T($0) })
            }
            try ex.run(batch: 2)
            outputs.append(ex.buffer(7))
        }
        for (a, b) in zip(outputs[0], outputs[1]) {
            XCTAssertEqual(Double(a), Double(b), accuracy: tolerance * max(1, abs(Double(b))), "\(placement)")
        }
    }

    func testFusedInferenceMatchesUnfusedKernels() throws {
        for placement in [BatchnormPlacement.none, .beforeRelu, .afterRelu] {
            try compare(Double.self, placement, tolerance: 1e-15)
            try compare(Float.self, placement, tolerance: 1e-6)
        }
    }

    func testValidationOfFusedSlots() throws {
        var (fused, _) = plans(.afterRelu)
        fused.steps[0].inputs = [0, 1, 2]  // batchnorm inputs missing
        XCTAssertThrowsError(try Executor<Float>(plan: fused)) { XCTAssert("\($0)".contains("has 3 inputs; the kernel takes 7"), "\($0)") }
        let e = FusedEpilogue(bias: false, relu: false, batchnorm: .afterRelu, epsilon: 1e-3)
        (fused, _) = plans(.afterRelu)
        fused.steps[0].kernel = .fused(.conv2d(g), e)
        XCTAssertThrowsError(try Executor<Float>(plan: fused)) { XCTAssert("\($0)".contains("after relu needs relu"), "\($0)") }
        // The backward's slots: (dy, x, w, y?, bn_input?, gamma?, mean?, var?) -> (dx?, dw?, db?, dgamma?, dbeta?).
        let slots = FusedGradSlots(FusedEpilogue(bias: true, relu: true, batchnorm: .beforeRelu, epsilon: 1e-3),
                                   inputGrad: false, weightGrad: true)
        XCTAssertEqual([slots.y, slots.bnInput, slots.gamma, slots.mean, slots.variance], [3, 4, 5, 6, 7])
        XCTAssertEqual([slots.dx, slots.dw, slots.db, slots.dgamma, slots.dbeta], [nil, 0, 1, 2, 3])
        XCTAssertEqual(slots.inputCount, 8)
        XCTAssertEqual(slots.outputCount, 4)
    }
}
