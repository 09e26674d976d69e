// The compiler's per-layer choice between Winograd F(4x4,3x3) and the direct convolution:
// which steps are candidates, the measured errors, the policies, what the plan records and
// that an executor follows it (and can be told otherwise).

import Frontend
import GraphIR
import Passes
import Runtime
import XCTest

private let source = """
model wino
input x: f32[N, 1, 12, 12]
input labels: i32[N]
a = conv2d(x, filters=8, kernel=3, padding=same, activation=relu)
a_bn = batchnorm(a)
b = conv2d(a_bn, filters=8, kernel=3, padding=same, activation=relu)
b_bn = batchnorm(b)
c = conv2d(b_bn, filters=12, kernel=3, padding=same)
p = maxpool(c, size=2, stride=2)
d = conv2d(p, filters=4, kernel=1)
e = conv2d(d, filters=4, kernel=3, stride=2, padding=same)
f = flatten(e)
logits = dense(f, units=7)
loss = softmax_cross_entropy(logits, labels)
output logits, loss
train {
  loss = loss
  optimizer = adam(lr=1e-3)
  batch = 4
  epochs = 1
}
"""

final class ConvAlgorithmTests: XCTestCase {
    private func model() throws -> Graph { try Frontend.compile(source: source, file: "wino.graph") }

    private func compiled(_ policy: ConvAlgorithmPolicy, mode: CompileMode = .inference, batch: Int = 3,
                          probe: Bool = true) throws -> Plan {
        var o = CompileOptions()
        o.mode = mode
        o.batch = batch
        o.convAlgorithms = policy
        o.probe = probe
        return try compile(try model(), o).plan
    }

    private func algorithms(_ plan: Plan) -> [String: ConvAlgorithm?] {
        Dictionary(uniqueKeysWithValues: plan.steps.filter { winogradGeometry(of: $0.kernel) != nil }.map { ($0.name, $0.algorithm) })
    }

    /// Candidates are the 3x3, stride-1, padded convolutions (not the 1x1 nor the strided
    /// one); auto keeps the one-channel first layer direct; every candidate's error is
    /// measured and small; `winograd` marks all, `direct` none and measures nothing.
    func testPoliciesAndErrors() throws {
        let auto = try compiled(.auto)
        let candidates = algorithms(auto)
        XCTAssertEqual(Set(candidates.keys), ["a_bn", "b_bn", "c"], "\(auto.steps.map(\.name))")
        XCTAssertEqual(candidates["a_bn"], .direct, "one input channel: direct")
        XCTAssertEqual(candidates["b_bn"], .winograd)
        XCTAssertEqual(candidates["c"], .winograd)
        let errors = try XCTUnwrap(auto.metadata.winogradErrors)
        XCTAssertEqual(Set(errors.keys), Set(candidates.keys))
        for (name, e) in errors {
            XCTAssertGreaterThan(e, 0, "\(name): Winograd is not bitwise the direct kernel")
            XCTAssertLessThan(e, 1e-4, name)
        }
        XCTAssertEqual(algorithms(try compiled(.winograd)).values.map { $0 }, [ConvAlgorithm?](repeating: .winograd, count: 3))
        let direct = try compiled(.direct)
        XCTAssertTrue(direct.steps.allSatisfy { $0.algorithm == nil })
        XCTAssertNil(direct.metadata.winogradErrors)
        let unprobed = try compiled(.auto, probe: false)
        XCTAssertEqual(algorithms(unprobed), candidates, "the Winograd check does not depend on the pass probe")
        // Training plans choose for the training forward (fused with batch statistics) and for
        // the fused backward steps that compute a candidate's input gradient: b's only (a's input
        // is the data, so its backward computes no dx; c, with no epilogue, is not fused and
        // its gradient steps stay direct).
        let training = try compiled(.auto, mode: .training, batch: 4)
        let trained = algorithms(training)
        XCTAssertEqual(trained["b_bn"], .winograd)
        XCTAssertLessThan(training.metadata.winogradErrors?["b_bn"] ?? 1, 1e-4)
        let backward = training.steps.filter { winogradIsGradInput($0.kernel) && winogradGeometry(of: $0.kernel) != nil }
        XCTAssertEqual(backward.map(\.name), ["grad.a_bn"], "\(trained)")
        for step in backward {
            XCTAssertEqual(step.algorithm, .winograd, step.name)
            let e = try XCTUnwrap(training.metadata.winogradErrors?[step.name], step.name)
            XCTAssertGreaterThan(e, 0, "\(step.name): Winograd dx is not bitwise the direct one")
            XCTAssertLessThan(e, 1e-4, step.name)
        }
    }

    /// An executor follows the plan's marks by default (results within the recorded error of
    /// the direct ones, and not bitwise equal), and `winograd = false` / `true` override them.
    func testExecutorFollowsThePlan() throws {
        let plan = try compiled(.auto)
        let x = (0..<(3 * 144)).map { Float(($0 * 37) % 255) }
        func logits(_ winograd: Bool?) throws -> [Float] {
            let ex = try Executor<Float>(plan: plan)
            ex.winograd = winograd
            ex.setBuffer(plan.buffer(named: "x")!, x)
            try ex.run(batch: 3)
            return ex.buffer(plan.outputs[0])
        }
        let marked = try logits(nil), direct = try logits(false), all = try logits(true)
        XCTAssertNotEqual(marked, direct, "the marked layers ran as Winograd")
        XCTAssertNotEqual(marked, all, "the first layer stayed direct")
        let scale = direct.map { abs($0) }.max()!
        for (a, b) in zip(marked, direct) { XCTAssertEqual(a, b, accuracy: 1e-3 * scale) }
    }

    /// The workspace a compiled plan's memory summary states is what an executor with that
    /// many threads allocates: im2col workspace, per-thread panels (direct and Winograd) and
    /// the Winograd filter transforms; likewise for other settings and for Double.
    func testWorkspaceIsWhatTheExecutorAllocates() throws {
        for mode in [CompileMode.inference, .training] {
            let plan = try compiled(.auto, mode: mode, batch: 4)
            let memory = try XCTUnwrap(plan.memory)
            let threads = try XCTUnwrap(memory.workspaceThreads)
            let x = (0..<(4 * 144)).map { Float($0 % 255) }
            for winograd in [nil, false, true] as [Bool?] {
                for t in [threads, 1, 3] {
                    let ex = try Executor<Float>(plan: plan)
                    ex.threads = t
                    ex.winograd = winograd
                    ex.setBuffer(plan.buffer(named: "x")!, x)
                    try ex.run(batch: 4)
                    XCTAssertEqual(ex.workspaceBytesAllocated, executorWorkspaceBytes(plan, threads: t, winograd: winograd),
                                   "\(mode) winograd \(String(describing: winograd)) threads \(t)")
                    if winograd == nil && t == threads {
                        XCTAssertEqual(ex.workspaceBytesAllocated, memory.workspaceBytes, "\(mode): the summary")
                    }
                }
            }
            let d = try Executor<Double>(plan: plan)
            XCTAssertEqual(d.workspaceBytesAllocated, executorWorkspaceBytes(plan, threads: threads, elementBytes: 8))
        }
        let plan = try compiled(.auto)
        XCTAssertGreaterThan(executorWorkspaceBytes(plan, threads: 2, winograd: nil),
                             executorWorkspaceBytes(plan, threads: 2, winograd: false), "Winograd filters and panels count")
    }

    /// The marks and errors survive the .plan file; a plan marking a convolution Winograd
    /// cannot compute is refused.
    func testPlanFileAndValidation() throws {
        let plan = try compiled(.auto)
        let bytes = encodePlan(plan)
        let back = try decodePlan(bytes)
        XCTAssertEqual(back.steps.map(\.algorithm), plan.steps.map(\.algorithm))
        XCTAssertEqual(back.metadata.winogradErrors, plan.metadata.winogradErrors)
        var bad = plan
        let strided = bad.steps.firstIndex { $0.name == "e" }!
        bad.steps[strided].algorithm = .winograd
        XCTAssertThrowsError(try Executor<Float>(plan: bad)) { error in
            XCTAssertTrue("\(error)".contains("winograd"), "\(error)")
        }
    }
}
