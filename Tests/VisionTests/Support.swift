// Shared helpers of the photo tests: where ../shared is (skipping cleanly without it).

import Foundation
import XCTest

/// The repository root (two levels above this file's folder).
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// ../shared/photos beside the repository, or a skip.
func sharedPhotos() throws -> String {
    let dir = "\(repoRoot)/../shared/photos"
    guard FileManager.default.fileExists(atPath: "\(dir)/fer-training-scene.json") else {
        throw XCTSkip("../shared/photos is not beside the repository")
    }
    return dir
}

/// The default face cascade (Debian's opencv-data), or a skip.
func defaultCascade() throws -> String {
    let path = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"
    guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("opencv-data is not installed (\(path))") }
    return path
}

/// The directory holding the built products (fergc, libfergc_runtime.so).
var productsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL
}

func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-vision-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion (output through files, so nothing blocks), stdin from `input`.
func runProcess(_ executable: String, _ args: [String], environment: [String: String]? = nil, input: String? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-proc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr"), inURL = dir.appendingPathComponent("stdin")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: inURL.path, contents: Data((input ?? "").utf8))
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input == nil ? FileHandle.nullDevice : try FileHandle(forReadingFrom: inURL)
    try p.run()
    p.waitUntilExit()
    try out.close()
    try err.close()
    return ProcessResult(status: p.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
                         stderr: try String(contentsOf: errURL, encoding: .utf8))
}

func fergc(_ args: [String], input: String? = nil) throws -> ProcessResult {
    try runProcess(productsDirectory.appendingPathComponent("fergc").path, args, input: input)
}

/// The trained plan of the repository.
let trainedPlan = "\(repoRoot)/Models/trained/vgg_tuned.plan"

/// JSON lines parsed.
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { line in
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "not a JSON object: \(line)"])
        }
        return o
    }
}

/// The scene's description: pasted faces (box, index in split) and OpenCV's boxes.
struct Scene {
    var faces: [(box: [Int], index: Int)]
    var opencv: [[Int]]
}

func loadScene(_ photos: String) throws -> Scene {
    let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(photos)/fer-training-scene.json"))) as? [String: Any])
    let faces = try XCTUnwrap(j["faces"] as? [[String: Any]]).map { f in (box: f["box"] as! [Int], index: f["index_in_split"] as! Int) }
    return Scene(faces: faces, opencv: try XCTUnwrap(j["opencv_haar_default"] as? [[Int]]))
}

/// Models/tiny.graph compiled once per test process (a plan of 48x48 faces that loads in
/// milliseconds; the trained plan takes seconds to load in a debug build).
nonisolated(unsafe) var tinyPlanPath: String?

func tinyPlan() throws -> String {
    if let p = tinyPlanPath { return p }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-tiny-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent("tiny.plan").path
    let r = try fergc(["compile", "\(repoRoot)/Models/tiny.graph", "-o", path])
    guard r.status == 0 else { throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "compile failed: \(r.stderr)"]) }
    tinyPlanPath = path
    return path
}
