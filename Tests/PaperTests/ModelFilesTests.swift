// The model files the project commits at the top of Models/ (the ones README.md and
// docs/results name, each with its command) are models fergc compiles: each parses, lowers to an
// inference plan, and, where it has a train block, to a training step. Models/proxy/ and
// Models/study/ have their own tests (their generators' output). Nothing here is allocated or
// run: the plans are lowered, not loaded.

import Foundation
import Frontend
import GraphIR
import Passes
import Runtime
import Training
import XCTest

final class ModelFilesTests: XCTestCase {
    private func modelFiles() throws -> [String] {
        let dir = repoRoot.appendingPathComponent("Models").path
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".graph") }.sorted()
    }

    func testEveryModelFileCompilesForInferenceAndTraining() throws {
        let files = try modelFiles()
        XCTAssertTrue(files.contains("vgg16_gap_clahe.graph") && files.contains("vgg_tuned.graph"), "\(files)")
        var trained = 0
        for file in files {
            let g: Graph
            do { g = try model("Models/\(file)") } catch { XCTFail("\(file): \(error)"); continue }
            var inference = g
            inference.training = nil
            inference.outputs = [inference.outputs[0]]
            do {
                var pm = PassManager(Pipelines.inferenceOptimized)
                let plan = try lowerToPlan(try pm.run(inference), maxBatch: 1)
                XCTAssertFalse(plan.steps.isEmpty, file)
            } catch { XCTFail("\(file), inference: \(error)") }
            guard g.training != nil else { continue }
            do {
                var pm = PassManager(Pipelines.trainingOptimized)
                let plan = try lowerToPlan(try pm.run(g), maxBatch: 2)
                XCTAssertFalse(plan.steps.isEmpty, file)
                trained += 1
            } catch { XCTFail("\(file), training: \(error)") }
        }
        XCTAssertGreaterThan(trained, files.count / 2)
    }

    /// The CLAHE proxy of session 54 (docs/results/best/README.md) starts from VGG16's pretrained
    /// convolutions and is shown the whole face as well as its crops: its parameters must be
    /// `vgg16_gap`'s by name and shape (so `--init ../shared/pretrained/vgg16_blocks1-4.npz`
    /// loads all twenty tensors), its first convolution must see the face, its CLAHE and the face,
    /// and it must recompile at the whole face's side with the pooling still global.
    func testTheCLAHEModelIsVGG16GapWithTheFacesCLAHEOnItsMiddleChannel() throws {
        let clahe = try model("Models/vgg16_gap_clahe.graph")
        let plain = try model("Models/vgg16_gap.graph")
        XCTAssertEqual(parameterShapes(clahe), parameterShapes(plain))
        XCTAssertEqual(clahe.parameters.count, 22)

        let rgb = try XCTUnwrap(clahe.nodes.first { $0.name == "rgb" })
        guard case .concat = rgb.op else { return XCTFail("\(rgb.op)") }
        let sources = rgb.inputs.map { clahe[$0].name }
        XCTAssertEqual(sources, ["face", "face_clahe", "face"])
        let c = try XCTUnwrap(clahe.nodes.first { $0.name == "face_clahe" })
        XCTAssertEqual(c.inputs.map { clahe[$0].name }, ["x"], "CLAHE reads the raw input")
        XCTAssertEqual(clahe.training?.inputScale, 1, "clahe reads raw pixels")

        let whole = try withInputSide(clahe, side: 48)
        XCTAssertEqual(whole[try XCTUnwrap(whole.id(named: "face_clahe"))].type.perSample, [1, 48, 48])
        XCTAssertEqual(whole[try XCTUnwrap(whole.id(named: "gap"))].type.perSample, [512, 1, 1])
        XCTAssertEqual(parameterShapes(whole), parameterShapes(plain))
    }

    /// The half-pretrained proxy of session 55 keeps VGG16's blocks 1-3 and replaces block 4:
    /// `--init` with the pretrained file must load exactly blocks 1-3 (fourteen tensors), leave
    /// the new block 4 and the head seeded, and report block 4's six tensors of the file as
    /// unused. The file here is made of `vgg16_gap`'s conv shapes, so this holds without
    /// ../shared; the pooling must stay global at the whole face's side.
    func testTheHalfPretrainedModelTakesVGG16sFirstThreeBlocksAndANewBlock4() throws {
        let half = try model("Models/vgg16_b3_gap.graph")
        let full = try model("Models/vgg16_gap.graph")
        let fileShapes = parameterShapes(full).filter { $0.key.hasPrefix("block") }
        XCTAssertEqual(fileShapes.count, 20, "the pretrained file's ten convolutions")
        let file = InitTensors(source: "vgg16-like.npz", tensors: fileShapes.mapValues {
            (shape: $0, values: [Float](repeating: 0.5, count: $0.reduce(1, *)))
        })
        let (report, values) = try planInit(model: half, file: file)
        XCTAssertEqual(report.loaded.count, 14, "\(report.loaded)")
        XCTAssertTrue(report.loaded.allSatisfy { $0.hasPrefix("block1_") || $0.hasPrefix("block2_") || $0.hasPrefix("block3_") }, "\(report.loaded)")
        XCTAssertEqual(Set(report.unused), Set(fileShapes.keys.filter { $0.hasPrefix("block4_") }))
        XCTAssertTrue(report.notLoaded.contains("b4_conv1.weight") && report.notLoaded.contains("predictions.weight"), "\(report.notLoaded)")
        XCTAssertEqual(Set(values.keys), Set(report.loaded))

        XCTAssertEqual(half[try XCTUnwrap(half.id(named: "gap"))].type.perSample, [256, 1, 1])
        XCTAssertEqual(half.training?.epochs, 15, "the proxy's wall time of vgg16_gap's ten epochs")
        let whole = try withInputSide(half, side: 48)
        XCTAssertEqual(whole[try XCTUnwrap(whole.id(named: "gap"))].type.perSample, [256, 1, 1])
        XCTAssertEqual(parameterShapes(whole), parameterShapes(half))
    }
}
