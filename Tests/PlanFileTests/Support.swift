// Plans to write and read: the tiny model (Models/tiny.graph, 12x12) for the format tests, and a
// small 48x48 face model for the embedding, C and CLI tests; parameters are deterministic.

import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
import TestSupport
import XCTest

/// The repository root.
let repoRoot = repositoryRoot.path

/// 48x48 faces through one small conv, a pool and a dense layer to 7 classes.
let faceModelSource = """
model face

input x: f32[N, 1, 48, 48]

c1 = conv2d(x, filters=2, kernel=3, padding=same, activation=relu)
c1_bn = batchnorm(c1)
p1 = maxpool(c1_bn, size=4, stride=4)
f = flatten(p1)
logits = dense(f, units=7)
output logits
"""

/// The smallest useful model for the bit-flip test (every variant is decoded, so the file must
/// be a few KB): conv, batchnorm, pool, dense on 8x8 inputs.
let miniModelSource = """
model mini

input x: f32[N, 1, 8, 8]

c1 = conv2d(x, filters=2, kernel=3, padding=same, activation=relu)
c1_bn = batchnorm(c1)
p1 = maxpool(c1_bn, size=2, stride=2)
f = flatten(p1)
logits = dense(f, units=7)
output logits
"""

/// A deterministic value in [-1, 1) for (seed, i).
func pseudoRandom(_ seed: UInt64, _ i: Int) -> Float {
    var z = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Float(z >> 40) / Float(1 << 23) - 1
}

/// Lowers `graph` (outputs: `output` only) to a memory-planned inference plan with values for
/// every parameter and state buffer and filled-in metadata.
func inferencePlan(_ graph: Graph, output: String, maxBatch: Int, inputScale: Double = 1) throws -> Plan {
    var g = graph
    g.outputs = [try XCTUnwrap(g.id(named: output))]
    g.training = nil
    g = try deadCodeElimination(g)
    var plan = planMemory(try lowerToPlan(g, maxBatch: maxBatch))
    for (i, b) in plan.buffers.enumerated() where b.role == .parameter || b.role == .state {
        let n = b.elementCount(batch: 1)
        // Variances must be positive; the rest small and signed.
        plan.parameters[b.name] = (0..<n).map { k in
            b.name.hasSuffix("var") ? 1 + 0.5 * abs(pseudoRandom(UInt64(i), k)) : 0.3 * pseudoRandom(UInt64(i), k)
        }
    }
    let input = plan.buffers.first { $0.role == .input && $0.elementType == .f32 }!
    plan.metadata.modelName = graph.name
    plan.metadata.sourceHash = "test-source"
    plan.metadata.inputShape = input.perSample
    plan.metadata.inputScale = inputScale
    plan.metadata.classNames = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
    plan.metadata.passes = ["dce", "lower", "plan-memory"]
    plan.metadata.probeErrors = ["logits": 1.5e-7]
    plan.metadata.training = ["run": "test", "note": "quote \" and newline \n and é"]
    plan.metadata.producer = "fergc tests"
    return plan
}

/// Models/tiny.graph's logits at batch 2: a plan of a few KB.
func tinyPlan() throws -> Plan {
    try inferencePlan(try Frontend.compile(path: "\(repoRoot)/Models/tiny.graph"), output: "logits", maxBatch: 2)
}

/// The mini model at batch 2: about 4 KB.
func miniPlan() throws -> Plan {
    try inferencePlan(try Frontend.compile(source: miniModelSource, file: "mini.graph"), output: "logits", maxBatch: 2)
}

/// The 48x48 face model (input scale 1/255, as for raw pixels).
func facePlan(maxBatch: Int = 4) throws -> Plan {
    try inferencePlan(try Frontend.compile(source: faceModelSource, file: "face.graph"), output: "logits",
                      maxBatch: maxBatch, inputScale: 1.0 / 255)
}

/// A 48x48 synthetic face-ish image (8-bit), different for each seed.
func syntheticPixels(_ seed: Int, side: Int = 48) -> [UInt8] {
    (0..<side * side).map { k in
        let y = Double(k / side), x = Double(k % side)
        let v = 128 + 60 * sin(x / 5 + Double(seed)) * cos(y / 7) + 40 * pseudoRandomDouble(seed, k)
        return UInt8(max(0, min(255, v)))
    }
}

func pseudoRandomDouble(_ seed: Int, _ k: Int) -> Double { Double(pseudoRandom(UInt64(seed) + 1000, k)) }

/// A binary PGM.
func pgm(_ pixels: [UInt8], width: Int, height: Int) -> Data {
    Data(Array("P5\n# test image\n\(width) \(height)\n255\n".utf8) + pixels)
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let dir = try makeTemporaryDirectory("fergc-plan")
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

typealias ProcessResult = ProcessOutput

/// Runs a program to completion (TestSupport's runProgram) in `cwd`.
func runProcess(_ executable: String, _ args: [String], environment: [String: String]? = nil, cwd: String = repoRoot) throws -> ProcessResult {
    try runProgram(executable, args, in: URL(fileURLWithPath: cwd), environment: environment)
}

/// The fergc binary.
func fergc(_ args: [String]) throws -> ProcessResult { try runFergc(args) }
