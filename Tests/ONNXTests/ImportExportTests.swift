// The ONNX import of PyTorch's exports of the parity fixtures, export → import round trips of
// the trained plan, and ONNX Runtime on the exported plan.

import Foundation
import GraphIR
import Interop
import NumPyIO
import Passes
import Runtime
import Training
import XCTest

final class ImportExportTests: XCTestCase {
    /// Imports `<name>_parity.onnx`, compiles it and compares with the fixture's eval_logits
    /// (PyTorch, float64) on its x.
    func checkFixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let onnxPath = try sharedFixture("\(name)_parity.onnx")
        let npz = try NumPyIO.readNPZ(path: try sharedFixture("\(name)_parity.npz"))
        let arrays = Dictionary(uniqueKeysWithValues: npz.map { ($0.name, $0.array) })
        let x = try XCTUnwrap(arrays["x"]), expected = try XCTUnwrap(arrays["eval_logits"])
        let imported = try importONNX(try readONNXModel(path: onnxPath))
        XCTAssertEqual(imported.graph.inputs.count, 1)
        let n = x.shape[0]
        let plan = try compileImported(imported, batch: n)
        let out = try runPlan(plan, inputs: [imported.graph[imported.graph.inputs[0]].name: x.floats], batch: n)
        let logits = try XCTUnwrap(out[plan.buffers[plan.outputs[0]].name])
        let want = expected.floats.map(Double.init)
        XCTAssertEqual(logits.count, want.count, file: file, line: line)
        let largest = want.map(abs).max()!
        let err = maxAbsDiff(logits, want)
        print("\(name): imported plan vs PyTorch eval_logits: max |diff| \(err), largest |logit| \(largest), relative \(err / largest)")
        XCTAssertLessThanOrEqual(err / max(largest, 1), 1e-5, file: file, line: line)
        // The graph text reads back to the same graph.
        let text = imported.graph.printed()
        XCTAssertTrue(text.contains("batchnorm("), file: file, line: line)
    }

    func testImportMiniFixtureReproducesEvalLogits() throws { try checkFixture("mini_tuned") }

    func testImportVGGFixtureReproducesEvalLogits() throws { try checkFixture("vgg_tuned") }

    /// An ensemble's output is already probabilities (the weighted mean of its members'): the
    /// export adds no Softmax after it, where a plan of logits gets one as `probabilities`.
    func testExportAddsNoSoftmaxAfterAnEnsemblesProbabilities() throws {
        let plan = try trainedPlanFile().plan
        let single = try exportONNX(plan)
        XCTAssertEqual(single.graph.outputs.count, 2, "the logits and the added probabilities")
        XCTAssertEqual(single.graph.nodes.last?.opType, "Softmax")
        let pair = try ensemblePlans([EnsembleMember(label: "a", plan: plan), EnsembleMember(label: "b", plan: plan)])
        XCTAssertTrue(pair.outputIsProbabilities)
        let model = try exportONNX(pair)
        XCTAssertEqual(model.graph.outputs.map(\.name), ["probabilities"])
        XCTAssertEqual(model.graph.nodes.last?.opType, "Add")
    }

    /// The trained plan: export, decode the bytes, import, compile; the plan's logits on the
    /// same faces agree to 1e-6. Both run every convolution directly: which algorithm a
    /// convolution uses is a compile option (`--winograd`), not part of the model.
    func testExportImportRoundTripOfTrainedPlan() throws {
        let file = try trainedPlanFile()
        var plan = file.plan
        for i in plan.steps.indices { plan.steps[i].algorithm = nil }
        var options = ExportOptions()
        options.weightsSHA256 = file.weightsSHA256
        let bytes = encodeONNXModel(try exportONNX(plan, options))
        let back = try decodeONNXModel(bytes)
        XCTAssertEqual(back.irVersion, 7)
        XCTAssertEqual(back.defaultOpset, 13)
        XCTAssertEqual(back.metadata(ONNXMetadataKey.classNames).flatMap(parseJSONStringArray), plan.metadata.classNames)
        XCTAssertEqual(back.metadata(ONNXMetadataKey.sourceHash), plan.metadata.sourceHash)
        XCTAssertEqual(back.metadata(ONNXMetadataKey.weightsSHA256), file.weightsSHA256)
        XCTAssertEqual(back.metadata(ONNXMetadataKey.inputLayout), "NCHW")
        XCTAssertEqual(back.metadata(ONNXMetadataKey.inputScale).flatMap(Double.init), plan.metadata.inputScale)
        let imported = try importONNX(back)
        let n = 4
        let faces = try publicTestFaces(n)
        let scale = Float(plan.metadata.inputScale)
        let original = try runFaceByFace(plan, inputs: ["x": faces.map { Float($0) * scale }], count: n)
        let logitsName = plan.buffers[plan.outputs[0]].name
        // Compiled like the trained plan (batch 1: kernels may sum in another order for
        // another batch size), and run on raw pixels (the input scale is a Mul in the model).
        let again = try compileImported(imported, batch: 1, algorithms: .direct)
        let out = try runFaceByFace(again, inputs: ["x": faces.map { Float($0) }], count: n)
        let a = try XCTUnwrap(original[logitsName]), b = try XCTUnwrap(out[logitsName])
        let err = maxAbsDiff(b, a.map(Double.init))
        print("round trip: max |logit diff| \(err) over \(a.count) logits")
        XCTAssertLessThanOrEqual(err, 1e-6)
        // The ONNX model's second output, the probabilities, is there in the graph (an
        // inference plan computes the first output; the runtime applies the softmax).
        XCTAssertEqual(imported.graph.outputs.map { imported.graph[$0].name }, [logitsName, "probabilities"])
    }

    /// ONNX Runtime (from the project's .venv-ci, or FERGC_ONNX_PYTHON) runs the exported
    /// trained plan on 64 PublicTest faces: its probabilities equal fergc's to 1e-5, and
    /// onnx.checker accepts the model.
    func testONNXRuntimeAgreesOnExportedTrainedPlan() throws {
        let python = try onnxPython()
        let file = try trainedPlanFile()
        let plan = file.plan
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-onnx-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let onnx = dir.appendingPathComponent("vgg_tuned.onnx").path
        var options = ExportOptions()
        options.weightsSHA256 = file.weightsSHA256
        try writeONNXModel(try exportONNX(plan, options), to: onnx)
        let n = 64
        let faces = try publicTestFaces(n)
        let facesPath = dir.appendingPathComponent("faces.npy").path
        try Data(NumPyIO.writeNPY(NDArray(floats: faces.map(Float.init), shape: [n, 1, 48, 48]))).write(to: URL(fileURLWithPath: facesPath))
        let outPath = dir.appendingPathComponent("probs.npy").path
        let script = """
        import sys, numpy as np, onnx, onnxruntime as ort
        m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)
        s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        p = s.run(["probabilities"], {"x": np.load(sys.argv[2])})[0]
        np.save(sys.argv[3], p.astype(np.float32)); print("checker ok; ort", ort.__version__, "onnx", onnx.__version__)
        """
        let (status, output) = try runProcess(python, ["-c", script, onnx, facesPath, outPath])
        XCTAssertEqual(status, 0, output)
        print(output)
        let ort = try NumPyIO.readNPY(Array(try Data(contentsOf: URL(fileURLWithPath: outPath)))).floats
        let session = try Session(try LoadedPlan(plan: plan))
        let mine = try session.predictRaw(pixels: faces).flatMap { $0 }
        XCTAssertEqual(ort.count, mine.count)
        let err = maxAbsDiff(mine, ort.map(Double.init))
        print("ONNX Runtime vs fergc on \(n) PublicTest faces: max |probability diff| \(err)")
        XCTAssertLessThanOrEqual(err, 1e-5)
    }
}

/// Models/trained/vgg_tuned.plan, read once (its CRCs and weights hash take seconds in a debug build).
nonisolated(unsafe) var trainedPlanCache: PlanFile?
func trainedPlanFile() throws -> PlanFile {
    if let f = trainedPlanCache { return f }
    let f = try readPlanFile(path: repoRoot.appendingPathComponent("Models/trained/vgg_tuned.plan").path)
    trainedPlanCache = f
    return f
}

/// The first n PublicTest faces of the embedded FER2013 sample, raw pixels.
func publicTestFaces(_ n: Int) throws -> [UInt8] {
    let data = try loadFER2013(path: repoRoot.appendingPathComponent("Data/fer2013-sample.csv.gz").path)
    let set = data[.publicTest]
    XCTAssertGreaterThanOrEqual(set.count, n)
    return Array(set.pixels[0..<(n * FaceSet.pixelsPerImage)])
}

/// Runs a plan compiled for batch 1 (like the trained plan) on `count` samples, one at a time.
func runFaceByFace(_ plan: Plan, inputs: [String: [Float]], count: Int) throws -> [String: [Float]] {
    var out: [String: [Float]] = [:]
    let runner = try PlanRunner(plan)
    for i in 0..<count {
        let one = inputs.mapValues { v in
            let per = v.count / count
            return Array(v[(i * per)..<((i + 1) * per)])
        }
        for (k, v) in try runner.run(one, batch: 1) { out[k, default: []] += v }
    }
    return out
}

/// The Python with onnx and onnxruntime: FERGC_ONNX_PYTHON, or the project's .venv-ci.
func onnxPython() throws -> String {
    let candidates = [ProcessInfo.processInfo.environment["FERGC_ONNX_PYTHON"], repoRoot.appendingPathComponent(".venv-ci/bin/python").path].compactMap { $0 }
    for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
        if let (s, _) = try? runProcess(c, ["-c", "import onnx, onnxruntime"]), s == 0 { return c }
    }
    throw XCTSkip("no Python with onnx and onnxruntime (.ci/run installs them into .venv-ci when PyPI is reachable; or set FERGC_ONNX_PYTHON)")
}

func runProcess(_ exe: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
