import XCTest
import GraphIR
@testable import Frontend

/// The repository root, found from this file's path.
let repoRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/FrontendTests/Support.swift
    return parts.joined(separator: "/")
}()

func modelPath(_ name: String) -> String { "\(repoRoot)/Models/\(name).graph" }

func compileModel(_ name: String) throws -> Graph {
    do { return try Frontend.compile(path: modelPath(name)) } catch { XCTFail("\(error)"); throw error }
}

/// Compiles `source`, failing the test if it is rejected.
func compiles(_ source: String, file: StaticString = #filePath, line: UInt = #line) -> Graph? {
    do {
        return try Frontend.compile(source: source, file: "t.graph")
    } catch {
        XCTFail("unexpected error:\n\(error)", file: file, line: line)
        return nil
    }
}

/// Compiles `source`, expecting an error at `line:col` whose message is `message`.
@discardableResult
func expectError(_ source: String, _ errLine: Int, _ errCol: Int, _ message: String,
                 file: StaticString = #filePath, line: UInt = #line) -> Diagnostic? {
    do {
        let g = try Frontend.compile(source: source, file: "t.graph")
        XCTFail("expected an error, got a graph:\n\(g.printed())", file: file, line: line)
        return nil
    } catch {
        XCTAssertEqual("\(error.line):\(error.column)", "\(errLine):\(errCol)", "location of: \(error.message)", file: file, line: line)
        XCTAssertEqual(error.message, message, file: file, line: line)
        XCTAssert(error.description.hasPrefix("t.graph:\(error.line):\(error.column): error: "), file: file, line: line)
        return error
    }
}

/// A minimal valid prefix of four lines (model, image input, labels, blank): the first line
/// after it is line 5.
let header = "model m\ninput x: f32[N, 1, 8, 8]\ninput labels: i32[N]\n\n"
