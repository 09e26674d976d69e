// What the test targets that run programs share: where the repository and the built binaries
// are, and running a program to completion. Foundation only, so any test target can use it.

import Foundation

/// The repository's root (this file is Tests/TestSupport/Programs.swift).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The directory holding the built products: the test bundle, fergc, libfergc_runtime.so.
public var productsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL
}

/// A finished program's exit status and output.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to completion in `cwd`. Output goes through files, not pipes: a large output
/// cannot block the child and nothing needs a reader thread. Bytes that are not UTF-8 come back
/// as replacement characters. `environment` is laid over this process's; `input`, when given,
/// is the program's standard input (otherwise /dev/null).
public func runProgram(_ executable: String, _ args: [String], in cwd: URL = repositoryRoot,
                       environment: [String: String]? = nil, input: String? = nil) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.currentDirectoryURL = cwd
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-proc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    p.standardOutput = out
    p.standardError = err
    if let input {
        let inURL = dir.appendingPathComponent("stdin")
        FileManager.default.createFile(atPath: inURL.path, contents: Data(input.utf8))
        p.standardInput = try FileHandle(forReadingFrom: inURL)
    } else {
        p.standardInput = FileHandle.nullDevice
    }
    try p.run()
    p.waitUntilExit()
    try out.close()
    try err.close()
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                         stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// Runs the built fergc.
public func runFergc(_ args: [String], in cwd: URL = repositoryRoot, input: String? = nil) throws -> ProcessOutput {
    try runProgram(productsDirectory.appendingPathComponent("fergc").path, args, in: cwd, input: input)
}

/// A new empty directory under the system's temporary directory, named `prefix`-UUID.
public func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
