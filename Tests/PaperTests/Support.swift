// Shared helpers of the paper-table tests: paths, the embedded sample, model files.

import Foundation
import Frontend
import GraphIR
import Training
import XCTest

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let sharedDir = repoRoot.deletingLastPathComponent().appendingPathComponent("shared")
let pretrainedPath = sharedDir.appendingPathComponent("pretrained/vgg16_blocks1-4.npz").path
let samplePath = repoRoot.appendingPathComponent("Data/fer2013-sample.csv.gz").path

func model(_ relative: String) throws -> Graph {
    try Frontend.compile(path: repoRoot.appendingPathComponent(relative).path)
}

func model(source: String) throws -> Graph {
    try Frontend.compile(source: source, file: "test.graph")
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

/// The products directory holding the test bundle and the fergc binary.
var productsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the built fergc binary from the repository root; output goes through files.
func fergc(_ args: [String]) throws -> CommandResult {
    try runProgram(productsDirectory.appendingPathComponent("fergc").path, args)
}

/// Runs a program from the repository root; output goes through files.
func runProgram(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    p.currentDirectoryURL = repoRoot
    let dir = temporaryDirectory("cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let outPath = dir + "/stdout", errPath = dir + "/stderr"
    FileManager.default.createFile(atPath: outPath, contents: nil)
    FileManager.default.createFile(atPath: errPath, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath)), err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    try out.close()
    try err.close()
    return CommandResult(status: p.terminationStatus,
                         stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}
