// Shared helpers of the photo tests: where ../shared is (skipping cleanly without it).

import Foundation
import TestSupport
import XCTest

/// The repository root.
let repoRoot = repositoryRoot.path

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

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let dir = try makeTemporaryDirectory("fergc-vision")
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

typealias ProcessResult = ProcessOutput

/// Runs a program to completion from the repository root, stdin from `input`.
func runProcess(_ executable: String, _ args: [String], environment: [String: String]? = nil, input: String? = nil) throws -> ProcessResult {
    try runProgram(executable, args, environment: environment, input: input)
}

func fergc(_ args: [String], input: String? = nil) throws -> ProcessResult { try runFergc(args, input: input) }

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
