// Tests of the built `fergc` binary: what a user types and what they see.

import Foundation
import TestSupport
import XCTest

let repoRoot = repositoryRoot

typealias Result = ProcessOutput

func fergc(_ args: [String], cwd: URL = repoRoot) throws -> Result { try runFergc(args, in: cwd) }

final class CLITests: XCTestCase {
    func testHelpListsCommands() throws {
        let r = try fergc(["--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("compile"))
        XCTAssertTrue(r.stdout.contains("run"))
        let c = try fergc(["compile", "--help"])
        XCTAssertEqual(c.status, 0)
        XCTAssertTrue(c.stdout.contains("--summary"))
    }

    func testUnknownCommandAndOptionSuggest() throws {
        let r = try fergc(["compil", "Models/tiny.graph"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("did you mean 'compile'?"), r.stderr)
        let o = try fergc(["compile", "Models/tiny.graph", "--sumary"])
        XCTAssertEqual(o.status, 2)
        XCTAssertTrue(o.stderr.contains("did you mean '--summary'?"), o.stderr)
    }

    func testSummaryJSONHasKerasCounts() throws {
        for (model, total, trainable) in [("vgg_tuned", 3_066_471, 3_063_271), ("vgg_scratch", 3_060_071, 3_060_071)] {
            let r = try fergc(["compile", "Models/\(model).graph", "--summary", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            XCTAssertEqual(json?["params_total"] as? Int, total, model)
            XCTAssertEqual(json?["params_trainable"] as? Int, trainable, model)
            XCTAssertEqual(json?["params_non_trainable"] as? Int, total - trainable, model)
            let layers = json?["layers"] as? [[String: Any]] ?? []
            XCTAssertFalse(layers.isEmpty)
            XCTAssertEqual(layers.reduce(0) { $0 + ($1["params"] as? Int ?? 0) }, total)
            for l in layers {
                XCTAssertNotNil(l["name"] as? String)
                XCTAssertNotNil(l["op"] as? String)
                XCTAssertNotNil(l["output_shape"] as? [Any])
            }
        }
    }

    func testSummaryTable() throws {
        let r = try fergc(["compile", "Models/vgg_tuned.graph", "--summary"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Total params: 3,066,471"), r.stdout)
        XCTAssertTrue(r.stdout.contains("Trainable params: 3,063,271"), r.stdout)
        XCTAssertTrue(r.stdout.contains("block1_conv1"), r.stdout)
    }

    func testTrainingStepIR() throws {
        let r = try fergc(["compile", "Models/tiny.graph", "--train", "--emit", "ir"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for needle in ["fused_conv2d_train(", "fused_conv2d_train_grad(", "fused_dense_train_grad(", "adam_update(",
                       "max_norm_project(", "increment(optimizer.iterations)", "batchnorm_stats_update("] {
            XCTAssertTrue(r.stdout.contains(needle), "IR lacks \(needle)")
        }
        // The printed training step is itself a valid model file.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-cli-\(getpid())-step.graph")
        try r.stdout.write(to: tmp, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let again = try fergc(["compile", tmp.path, "--summary", "--no-probe"])
        XCTAssertEqual(again.status, 0, again.stderr)
        // Without fusion the step is made of the plain backward ops.
        let plain = try fergc(["compile", "Models/tiny.graph", "--train", "--emit", "ir", "--disable-pass", "fuse"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        for needle in ["batchnorm_train(", "conv2d_grad_weight(", "batchnorm_train_grad(", "relu_grad("] {
            XCTAssertTrue(plain.stdout.contains(needle), "IR without fusion lacks \(needle)")
        }
    }

    func testPrintAfterAndUnknownPass() throws {
        let r = try fergc(["compile", "Models/tiny.graph", "--train", "--print-after", "autodiff", "--time-passes"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("IR after autodiff"))
        XCTAssertTrue(r.stderr.contains("pass timings"))
        let bad = try fergc(["compile", "Models/tiny.graph", "--train", "--print-after", "autodif"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("did you mean 'autodiff'?"), bad.stderr)
    }

    func testMalformedModelGetsLocatedError() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-cli-\(getpid())-bad.graph")
        try "model bad\ninput x: f32[N, 1, 8, 8]\ny = conv2 (x, filters=4, kernel=3)\n".write(to: tmp, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let r = try fergc(["compile", tmp.path, "--summary"])
        XCTAssertEqual(r.status, 1)
        // The diagnostic as compilers print it, not behind a second "error: ".
        XCTAssertTrue(r.stderr.hasPrefix("\(tmp.path):3:5: error:"), r.stderr)
        XCTAssertTrue(r.stderr.contains("^"), r.stderr)
    }

    func testMissingFileIsAnError() throws {
        let r = try fergc(["compile", "no/such/model.graph"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("no/such/model.graph"), r.stderr)
    }

    func testRunOnMiniFixtureWritesLogitsLossAndGradients() throws {
        let fixture = repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/mini_tuned_parity.npz").path
        let model = repoRoot.appendingPathComponent("Tests/ParityTests/Fixtures/mini_tuned.graph").path
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-cli-\(getpid())-out.npz")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try fergc(["run", model, "--weights", fixture, "--input", fixture, "--train", "--no-dropout", "--dump", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let data = try Data(contentsOf: out)
        // A stored zip archive: member names appear in the clear.
        let text = String(decoding: data, as: UTF8.self)
        for name in ["logits.npy", "loss.npy", "grad.x.npy", "grad.fc6.weight.npy", "grad.block1_conv1_bn.gamma.npy"] {
            XCTAssertTrue(text.contains(name), "dump lacks \(name)")
        }
        let missing = try fergc(["run", model, "--weights", fixture, "--input", fixture])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("--dump"), missing.stderr)
    }

    /// `fergc bench`'s profile names each step's layer: a backward step is named after the
    /// gradient it writes, which is its layer's input (`grad.p1` is c2's backward), so the
    /// "layer" column says whose backward it is; updates say which layer they change.
    func testBenchNamesTheLayerOfEachStep() throws {
        let r = try fergc(["bench", "Models/tiny.graph", "--train", "--batch", "4", "--runs", "5", "--warmup", "0", "--no-sgemm", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rows = try XCTUnwrap(j["layers"] as? [[String: Any]])
        var layer: [String: String] = [:]
        for row in rows { layer[try XCTUnwrap(row["name"] as? String)] = try XCTUnwrap(row["layer"] as? String) }
        XCTAssertEqual(layer["c2"], "c2")
        XCTAssertEqual(layer["grad.p1"], "c2 backward")           // c2's input gradient (and its weight's, fused)
        XCTAssertEqual(layer["grad.c2"], "p2 backward")
        XCTAssertEqual(layer["grad.loss"], "loss.total backward")
        XCTAssertEqual(layer["grad.c2.weight"], "c2 backward")    // the sum of the data's part and the penalty's
        XCTAssertEqual(layer["adam_update.c2.weight"], "c2 update")
        XCTAssertEqual(layer["max_norm_project.c1.weight"], "c1 update")
        XCTAssertEqual(layer["batchnorm_stats_update.c1_bn"], "c1_bn update")
        XCTAssertEqual(layer["increment.optimizer.iterations"], "optimizer")
        XCTAssertEqual(layer["grad.loss.total"], "-")
        // Every backward row names a forward step of the plan or a parameter's layer.
        let forward = Set(rows.compactMap { $0["name"] as? String }.filter { !$0.hasPrefix("grad.") })
        for (name, l) in layer where name.hasPrefix("grad.") && l != "-" {
            XCTAssertTrue(l.hasSuffix(" backward"), "\(name): \(l)")
            let of = String(l.dropLast(" backward".count))
            XCTAssertTrue(forward.contains(of) || ["c1", "c2", "d1", "logits"].contains(of), "\(name): \(l)")
        }
        let text = try fergc(["bench", "Models/tiny.graph", "--train", "--batch", "4", "--runs", "5", "--warmup", "0", "--no-sgemm"])
        XCTAssertEqual(text.status, 0, text.stderr)
        let line = try XCTUnwrap(text.stdout.split(separator: "\n").first { $0.hasPrefix("  grad.p1 ") })
        XCTAssertTrue(line.contains("c2 backward"), String(line))
        XCTAssertTrue(text.stdout.contains("  step ") && text.stdout.contains("  layer "), text.stdout)
    }
}
