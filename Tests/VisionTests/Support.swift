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
