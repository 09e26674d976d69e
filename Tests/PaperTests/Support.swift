// Shared helpers of the paper-table tests: paths, the embedded sample, model files.

import Foundation
import Frontend
import GraphIR
import TestSupport
import Training
import XCTest

let repoRoot = repositoryRoot
let sharedDir = repoRoot.deletingLastPathComponent().appendingPathComponent("shared")
let pretrainedPath = sharedDir.appendingPathComponent("pretrained/vgg16_blocks1-4.npz").path
let samplePath = repoRoot.appendingPathComponent("Data/fer2013-sample.csv.gz").path

func model(_ relative: String) throws -> Graph {
    try Frontend.compile(path: repoRoot.appendingPathComponent(relative).path)
}

func model(source: String) throws -> Graph {
    try Frontend.compile(source: source, file: "test.graph")
}

/// A model's parameters by name, with their per-sample shapes: what `--init` and `--weights`
/// match a file's tensors against.
func parameterShapes(_ g: Graph) -> [String: [Int]] {
    Dictionary(uniqueKeysWithValues: g.parameters.map { (g[$0].name, g[$0].type.perSample) })
}

func requirePretrained() throws {
    guard FileManager.default.fileExists(atPath: pretrainedPath) else {
        throw XCTSkip("\(pretrainedPath) is not present")
    }
}

func temporaryDirectory(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-\(name)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

typealias CommandResult = ProcessOutput

/// Runs the built fergc binary from the repository root.
func fergc(_ args: [String]) throws -> CommandResult { try runFergc(args) }
