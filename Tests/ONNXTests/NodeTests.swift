// The importer against ONNX's own test data (Debian's libonnx-testdata): the node tests of the
// ops fergc supports are imported, compiled and run, and compared with their stored outputs;
// every model of the package is read without a crash or a hang; and thousands of corrupted
// versions of the mini fixture are rejected with errors.

import Foundation
import GraphIR
import Interop
import Passes
import Runtime
import XCTest

/// For each op, the inputs that are weights in a real model: the harness gives them as
/// constants (the node tests feed them as graph inputs).
let weightInputs: [String: Set<Int>] = [
    "Conv": [1, 2], "BatchNormalization": [1, 2, 3, 4], "Gemm": [1, 2], "MatMul": [1], "Reshape": [1],
]
let nodeTestOps: Set<String> = ["Conv", "BatchNormalization", "Relu", "LeakyRelu", "MaxPool", "AveragePool", "Gemm",
                                "MatMul", "Add", "Flatten", "Reshape", "Softmax", "Concat", "Transpose"]

func testdataDir(_ sub: String) throws -> String {
    let p = onnxTestdata + "/" + sub
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue else {
        throw XCTSkip("\(p) is absent: install Debian's libonnx-testdata (.ci/run does)")
    }
    return p
}

enum NodeTestResult { case passed(Double), refused(String), wrong(String) }

/// Imports, compiles and runs one node test; compares the first output.
func runNodeTest(_ dir: String) throws -> NodeTestResult {
    let model = try readONNXModel(path: dir + "/model.onnx")
    let node = model.graph.nodes[0]
    let weights = weightInputs[node.opType] ?? []
    let set = dir + "/test_data_set_0"
    let initialized = Set(model.graph.initializers.map(\.name))
    let fed = model.graph.inputs.filter { !initialized.contains($0.name) }
    var constants: [ONNXTensor] = []
    var inputs: [String: ONNXTensor] = [:]
    for (i, v) in fed.enumerated() {
        var t = try decodeONNXTensor(try readONNXBytes(path: "\(set)/input_\(i).pb"))
        t.name = v.name
        if let pos = node.inputs.firstIndex(of: v.name), weights.contains(pos) { constants.append(t) } else { inputs[v.name] = t }
    }
    let expected = try decodeONNXTensor(try readONNXBytes(path: "\(set)/output_0.pb"))
    var options = ImportOptions()
    options.constants = constants
    let imported: ImportedModel
    do { imported = try importONNX(model, options) } catch { return .refused("\(error)") }
    guard let first = inputs.values.first, let batch = first.dims.first, batch >= 1 else { return .wrong("no batched input") }
    let plan = try compileImported(imported, batch: batch)
    var feed: [String: [Float]] = [:]
    for (name, t) in inputs {
        guard let id = imported.graph.id(named: graphName(for: name)), let f = t.floats else { return .wrong("input \(name)") }
        feed[imported.graph[id].name] = f
    }
    let out = try runPlan(plan, inputs: feed, batch: batch)
    guard let y = out[plan.buffers[plan.outputs[0]].name], let want = expected.floats else { return .wrong("no output") }
    guard y.count == want.count else { return .wrong("\(y.count) values, expected \(want.count) \(expected.dims)") }
    let scale = max(1, want.map { Double(abs($0)) }.max() ?? 1)
    let err = maxAbsDiff(y, want.map(Double.init)) / scale
    return err <= 1e-5 ? .passed(err) : .wrong("relative error \(err)")
}

final class NodeTests: XCTestCase {
    func testNodeTestsOfSupportedOps() throws {
        let root = try testdataDir("node")
        var passed: [String] = [], refused: [(String, String)] = [], wrong: [(String, String)] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: root).sorted() {
            let dir = root + "/" + name
            guard let model = try? readONNXModel(path: dir + "/model.onnx"), model.graph.nodes.count == 1,
                  nodeTestOps.contains(model.graph.nodes[0].opType),
                  FileManager.default.fileExists(atPath: dir + "/test_data_set_0/output_0.pb") else { continue }
            switch try runNodeTest(dir) {
            case .passed: passed.append(name)
            case .refused(let why): refused.append((name, why))
            case .wrong(let why): wrong.append((name, why))
            }
        }
        print("node tests: \(passed.count) passed, \(refused.count) refused, \(wrong.count) wrong")
        print("passed: \(passed.joined(separator: " "))")
        for (n, why) in refused { print("refused \(n): \(why)") }
        // Nothing accepted may compute something else.
        XCTAssertTrue(wrong.isEmpty, "\(wrong)")
        // These cover every supported op (and the paddings fergc has).
        let mustPass = ["test_conv_with_strides_no_padding", "test_conv_with_autopad_same", "test_batchnorm_example",
                        "test_batchnorm_epsilon", "test_relu", "test_leakyrelu", "test_leakyrelu_default",
                        "test_maxpool_2d_default", "test_maxpool_2d_same_upper", "test_maxpool_2d_strides",
                        "test_averagepool_2d_default", "test_averagepool_2d_same_upper", "test_gemm_default_vector_bias",
                        "test_gemm_transposeB", "test_gemm_alpha", "test_gemm_beta", "test_matmul_2d", "test_add",
                        "test_flatten_axis1", "test_flatten_default_axis", "test_reshape_reduced_dims", "test_reshape_zero_and_negative_dim",
                        "test_softmax_example", "test_softmax_large_number", "test_concat_2d_axis_1", "test_concat_3d_axis_2"]
        for m in mustPass { XCTAssertTrue(passed.contains(m), "\(m) did not pass: \(refused.first { $0.0 == m }?.1 ?? "not found")") }
        // A refusal names the node and its op, or the graph input or output at fault.
        for (n, why) in refused {
            XCTAssertTrue(why.hasPrefix("node ") && why.contains("): ") || why.hasPrefix("input '") || why.hasPrefix("output '"), "\(n): \(why)")
        }
    }

    /// Every model of the test data (1,072 in libonnx-testdata 1.12): read and imported or
    /// refused with an error; none crashes or hangs.
    func testEveryModelIsImportedOrRefusedCleanly() throws {
        let root = try testdataDir("")
        guard let walker = FileManager.default.enumerator(atPath: root) else { throw XCTSkip("cannot list \(root)") }
        var models = 0, imported = 0
        var errors: [String: Int] = [:]
        for case let rel as String in walker where rel.hasSuffix("model.onnx") {
            models += 1
            let path = root + "/" + rel
            do {
                let m = try readONNXModel(path: path)
                _ = try importONNX(m)
                imported += 1
            } catch let e as ONNXFileError {
                XCTAssertFalse(e.message.isEmpty)
                errors["read", default: 0] += 1
            } catch let e as ImportError {
                XCTAssertFalse(e.message.isEmpty)
                errors["refused", default: 0] += 1
            }
        }
        print("walked \(models) models: \(imported) imported, \(errors)")
        XCTAssertGreaterThanOrEqual(models, 1000)
        XCTAssertEqual(errors["read", default: 0], 0, "every model of ONNX's own test data decodes")
    }

    /// Truncations of the mini fixture at 1,000 lengths and 2,000 single bit flips: every
    /// truncation is rejected with an error; a flip is rejected or gives a model that imports
    /// (a flipped weight bit is still a model); nothing crashes.
    func testTruncatedAndBitFlippedFilesAreRejectedCleanly() throws {
        let bytes = try readONNXBytes(path: try sharedFixture("mini_tuned_parity.onnx"))
        let good = try importONNX(try decodeONNXModel(bytes))
        XCTAssertFalse(good.graph.nodes.isEmpty)
        var seed: UInt64 = 0x5eed
        func next() -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(seed >> 33)
        }
        var truncRejected = 0
        var lengths = Array(0..<200) + (0..<800).map { _ in next() % bytes.count }
        lengths.append(bytes.count - 1)
        for n in lengths {
            do {
                _ = try importONNX(try decodeONNXModel(Array(bytes[0..<n])))
                XCTFail("a truncation to \(n) bytes was accepted")
            } catch let e as ProtobufError {
                XCTAssertFalse(e.description.isEmpty)
                truncRejected += 1
            } catch let e as ImportError {
                XCTAssertFalse(e.message.isEmpty)
                truncRejected += 1
            }
        }
        // Half the flips land in the structure (everything but the weights' raw bytes, which
        // are 96% of the file), half anywhere.
        let raw = try rawDataRanges(bytes)
        let structure = (0..<bytes.count).filter { p in !raw.contains { $0.contains(p) } }
        XCTAssertGreaterThan(structure.count, 1000)
        var flipsRejected = 0, flipsImported = 0
        for k in 0..<2000 {
            var b = bytes
            let i = k % 2 == 0 ? structure[next() % structure.count] : next() % b.count
            b[i] ^= UInt8(1 << (next() % 8))
            do {
                _ = try importONNX(try decodeONNXModel(b))
                flipsImported += 1
            } catch is ProtobufError {
                flipsRejected += 1
            } catch is ImportError {
                flipsRejected += 1
            }
        }
        print("truncations rejected: \(truncRejected) of \(lengths.count); bit flips: \(flipsRejected) rejected, \(flipsImported) still import")
        XCTAssertEqual(truncRejected, lengths.count)
        XCTAssertGreaterThan(flipsRejected, 0)
    }
}

/// The payload ranges of the initializers' raw_data in a model (model.graph.initializer.raw_data).
func rawDataRanges(_ bytes: [UInt8]) throws -> [Range<Int>] {
    var out: [Range<Int>] = []
    var m = WireReader(bytes, path: "model")
    while let f = try m.next() {
        guard f.number == 7 else { continue }
        var g = try m.message(f, "graph")
        while let h = try g.next() {
            guard h.number == 5 else { continue }
            var t = try g.message(h, "initializer")
            while let r = try t.next() {
                if r.number == 9 { out.append(r.payload) }
            }
        }
    }
    return out
}
