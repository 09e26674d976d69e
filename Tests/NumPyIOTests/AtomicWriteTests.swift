import Foundation
import XCTest
@testable import NumPyIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class AtomicWriteTests: XCTestCase {
    var dir = ""
    let old: [UInt8] = Array("old contents".utf8)

    override func setUpWithError() throws { dir = try makeTempDir() }
    override func tearDown() {
        chmod(dir, 0o755)
        try? FileManager.default.removeItem(atPath: dir)
    }

    func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { Array($0) } }
    func listing() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    func testWritesAndReplaces() throws {
        let path = dir + "/f.bin"
        try atomicWrite(old, to: path)
        XCTAssertEqual(contents(path), old)
        chmod(path, 0o600)
        try atomicWrite([1, 2, 3], to: path)
        XCTAssertEqual(contents(path), [1, 2, 3])
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "mode of the replaced file is preserved")
        XCTAssertEqual(listing(), ["f.bin"], "no temp file left behind")
        // Relative path (no directory component) works too.
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        try atomicWrite([9], to: "rel.bin")
        XCTAssertEqual(contents(dir + "/rel.bin"), [9])
    }

    func testMissingDirectoryFails() {
        XCTAssertThrowsError(try atomicWrite(old, to: dir + "/nope/f.bin")) { e in
            XCTAssertTrue("\(e)".contains("nope/f.bin"), "\(e)")
        }
    }

    func testTempFileCannotBeCreatedKeepsOldFile() throws {
        let path = dir + "/f.bin"
        try atomicWrite(old, to: path)
        // No file descriptor left, so the temp file cannot be created.
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved), 0)
        var limited = saved
        limited.rlim_cur = 3
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limited), 0)
        var thrown: Error?
        do { try atomicWrite([1, 2, 3], to: path) } catch { thrown = error }
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        XCTAssertTrue("\(thrown.map { "\($0)" } ?? "no error")".contains("cannot create temp file"), "\(String(describing: thrown))")
        XCTAssertEqual(contents(path), old)
    }

    func testFailedWriteKeepsOldFileAndRemovesTemp() throws {
        let path = dir + "/f.bin"
        try atomicWrite(old, to: path)
        // Simulate a full disk: cap the file size so write() fails with EFBIG part-way.
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var limited = saved
        limited.rlim_cur = 4096
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited), 0)
        var thrown: Error?
        do { try atomicWrite([UInt8](repeating: 7, count: 100_000), to: path) } catch { thrown = error }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        signal(SIGXFSZ, oldHandler)
        XCTAssertNotNil(thrown)
        XCTAssertTrue("\(thrown.map { "\($0)" } ?? "")".contains("write"), "\(String(describing: thrown))")
        XCTAssertEqual(contents(path), old)
        XCTAssertEqual(listing(), ["f.bin"], "temp file removed")
    }

    func testDirectoryTargetIsRefusedWithoutTemp() throws {
        // (A directory in the way used to fail at the rename; it is now refused before a temp
        // file exists, like a device node or a FIFO.)
        let path = dir + "/target"
        try FileManager.default.createDirectory(atPath: path + "/inner", withIntermediateDirectories: true)
        XCTAssertThrowsError(try atomicWrite(old, to: path)) { e in XCTAssertTrue("\(e)".contains("is a directory"), "\(e)") }
        XCTAssertEqual(listing(), ["target"])
    }

    func testReadOnlyDirectoryKeepsOldFile() throws {
        if geteuid() == 0 { throw XCTSkip("running as root: directory permissions are not enforced") }
        let path = dir + "/f.bin"
        try atomicWrite(old, to: path)
        XCTAssertEqual(chmod(dir, 0o555), 0)
        XCTAssertThrowsError(try NumPyIO.writeNPZ(sampleArrays(), compressed: false, to: path))
        XCTAssertEqual(contents(path), old)
        XCTAssertEqual(listing(), ["f.bin"])
    }
}
