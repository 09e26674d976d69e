import XCTest
import GraphIR
@testable import Frontend

/// `import "file"` (Sources/Frontend/Imports.swift): the blocks of another file, read from the
/// importing file's folder, give the graph the same blocks written in place give; every misuse
/// is an error located in the file it is in, with a note at the import that led there.
final class ImportTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-import-XXXXXX").path
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw XCTSkip("mkdtemp failed") }
        dir = String(cString: made)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func write(_ name: String, _ text: String) throws {
        let url = URL(fileURLWithPath: dir).appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// Compiles `dir/name`, expecting an error; returns it.
    private func error(_ name: String, file: StaticString = #filePath, line: UInt = #line) -> Diagnostic? {
        do {
            let g = try Frontend.compile(path: "\(dir)/\(name)")
            XCTFail("expected an error, got:\n\(g.printed())", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    let stage = """
        # a file of blocks
        block conv_bn_relu(x, filters, kernel=3) {
          conv = conv2d(x, filters=filters, kernel=kernel, padding=same, bias=false, init=he_normal)
          bn = batchnorm(conv, epsilon=1e-5, momentum=0.9)
          out = relu(bn)
          return out
        }

        """

    let tail = """
        f = flatten(s2)
        logits = dense(f, units=7)
        loss = softmax_cross_entropy(logits, labels)
        output logits, loss

        """

    /// Imported blocks lower to the graph the same blocks written in the model's file give,
    /// through a nested import, and a file imported twice (a diamond) is read once.
    func testImportedBlocksEqualBlocksWrittenInPlace() throws {
        try write("lib/conv.graph", stage)
        try write("lib/stage.graph", """
            import "conv.graph"
            block stage(x, filters) {
              a = conv_bn_relu(x, filters=filters)
              p = maxpool(a, size=2, stride=2)
              return p
            }

            """)
        try write("m.graph", header + """
            import "lib/stage.graph"
            import "lib/conv.graph"
            s1 = stage(x, filters=4)
            s2 = conv_bn_relu(s1, filters=8, kernel=1)

            """ + tail)
        let imported = try Frontend.compile(path: "\(dir)/m.graph")
        let inPlace = try XCTUnwrap(compiles(header + stage + """
            block stage(x, filters) {
              a = conv_bn_relu(x, filters=filters)
              p = maxpool(a, size=2, stride=2)
              return p
            }
            s1 = stage(x, filters=4)
            s2 = conv_bn_relu(s1, filters=8, kernel=1)

            """ + tail))
        XCTAssertEqual(imported.printed(), inPlace.printed())
        XCTAssertNotNil(imported.id(named: "s1.a.conv"))
    }

    /// A model whose text came from no file (a checkpoint's, a fuzzer's) reads no file.
    func testImportNeedsAModelCompiledFromAFile() throws {
        try write("lib.graph", stage)
        expectError(header + "import \"\(dir)/lib.graph\"\n", 5, 1,
                    "'import' needs a model compiled from a file: the imported file is looked for in that file's folder")
    }

    func testMissingFileIsLocatedAtThePath() throws {
        try write("m.graph", header + "import \"nope.graph\"\n")
        let e = try XCTUnwrap(error("m.graph"))
        XCTAssertEqual(e.file, "\(dir)/m.graph")
        XCTAssertEqual("\(e.line):\(e.column)", "5:8")
        XCTAssertEqual(e.message, "cannot import 'nope.graph': no such file (looked for '\(dir)/nope.graph')")

        try FileManager.default.createDirectory(atPath: "\(dir)/sub.graph", withIntermediateDirectories: true)
        try write("d.graph", header + "import \"sub.graph\"\n")
        XCTAssertEqual(error("d.graph")?.message, "cannot import 'sub.graph': it is a directory (looked for '\(dir)/sub.graph')")

        XCTAssertEqual(mkfifo("\(dir)/fifo.graph", 0o600), 0)
        try write("f.graph", header + "import \"fifo.graph\"\n")
        XCTAssertEqual(error("f.graph")?.message, "cannot import 'fifo.graph': it is a FIFO (named pipe), not a regular file (looked for '\(dir)/fifo.graph')")
    }

    /// An error inside an imported file is reported there, quoting its line, with a note at the
    /// import in the model's file.
    func testErrorInAnImportedFileIsReportedThereWithANoteAtTheImport() throws {
        try write("lib/bad.graph", "block b(x) {\n  result = relu(x)\n  return reslt\n}\n")
        try write("m.graph", header + "import \"lib/bad.graph\"\n")
        let e = try XCTUnwrap(error("m.graph"))
        XCTAssertEqual(e.file, "\(dir)/lib/bad.graph")
        XCTAssertEqual("\(e.line):\(e.column)", "3:10")
        XCTAssertEqual(e.message, "block 'b' returns 'reslt', which it does not define (did you mean 'result'?)")
        XCTAssertEqual(e.sourceLine, "  return reslt")
        XCTAssertEqual(e.notes.map { "\($0.file):\($0.line):\($0.column): \($0.message)" },
                       ["\(dir)/m.graph:5:1: in the file imported here"])
        XCTAssertEqual(e.notes.first?.sourceLine, "import \"lib/bad.graph\"")
    }

    /// An error in an imported body at a call gets the call's note even when the two are on
    /// lines of the same number in their files.
    func testErrorInAnImportedBodyGetsANoteAtTheCallOnTheSameLineNumber() throws {
        try write("lib.graph", "# 1\n# 2\n# 3\nblock b(x, k) {\n  y = conv2d(x, filters=4, kernl=k)\n  return y\n}\n")
        try write("m.graph", "model m\ninput x: f32[N, 1, 8, 8]\nimport \"lib.graph\"\n# 4\ny = b(x, k=3)\noutput y\n")
        let e = try XCTUnwrap(error("m.graph"))
        XCTAssertEqual("\(e.file):\(e.line)", "\(dir)/lib.graph:5")
        XCTAssertEqual(e.notes.map { "\($0.file):\($0.line): \($0.message)" }, ["\(dir)/m.graph:5: in the call of block 'b' here"])
    }

    func testImportedFileHoldsOnlyBlocksAndImports() throws {
        try write("lib.graph", stage + "y = relu(x)\n")
        try write("m.graph", header + "import \"lib.graph\"\n")
        let e = try XCTUnwrap(error("m.graph"))
        XCTAssertEqual(e.file, "\(dir)/lib.graph")
        XCTAssertEqual(e.line, 8)
        XCTAssertEqual(e.message, "an imported file holds only blocks and imports; a node belongs in the model's file")

        try write("lib2.graph", "model other\n")
        try write("m2.graph", header + "import \"lib2.graph\"\n")
        XCTAssertEqual(error("m2.graph")?.message, "an imported file holds only blocks and imports; 'model' belongs in the model's file")
    }

    /// A block defined in two files: the error is at the second definition, the note at the first,
    /// each in its own file.
    func testABlockDefinedInTwoFilesPointsAtBoth() throws {
        try write("lib.graph", stage)
        try write("m.graph", header + "import \"lib.graph\"\n" + stage)
        let e = try XCTUnwrap(error("m.graph"))
        XCTAssertEqual(e.file, "\(dir)/m.graph")
        XCTAssertEqual("\(e.line):\(e.column)", "7:7")
        XCTAssertEqual(e.message, "block 'conv_bn_relu' is already defined")
        XCTAssertEqual(e.notes.map { "\($0.file):\($0.line):\($0.column)" }, ["\(dir)/lib.graph:2:7"])
        XCTAssertEqual(e.notes.first?.sourceLine, "block conv_bn_relu(x, filters, kernel=3) {")
    }

    func testImportCycleShowsTheChain() throws {
        try write("a.graph", "import \"b.graph\"\n")
        try write("b.graph", "import \"a.graph\"\n")
        try write("m.graph", header + "import \"a.graph\"\n")
        let e = try XCTUnwrap(error("m.graph"))
        XCTAssertEqual(e.file, "\(dir)/b.graph")
        XCTAssertEqual("\(e.line):\(e.column)", "1:8")
        let leaf = URL(fileURLWithPath: dir).resolvingSymlinksInPath().lastPathComponent
        XCTAssertEqual(e.message, "'a.graph' imports itself: \(leaf)/a.graph -> \(leaf)/b.graph -> \(leaf)/a.graph")
        XCTAssertEqual(e.notes.map { "\($0.file):\($0.line)" }, ["\(dir)/a.graph:1", "\(dir)/m.graph:5"])

        try write("self.graph", header + "import \"self.graph\"\n")
        XCTAssertEqual(error("self.graph")?.message, "'self.graph' imports itself: \(leaf)/self.graph -> \(leaf)/self.graph")
        try write("lib.graph", "import \"back.graph\"\n")
        try write("back.graph", header + "import \"lib.graph\"\n")
        XCTAssertEqual(error("back.graph")?.message, "'back.graph' imports itself: \(leaf)/back.graph -> \(leaf)/lib.graph -> \(leaf)/back.graph")
    }

    /// Strings and the statement's syntax: located errors, no escapes, one line, ASCII.
    func testImportSyntaxErrors() {
        expectError(header + "import blocks\n", 5, 8,
                    "expected a file name in quotes after 'import', as in import \"blocks.graph\", found name 'blocks'")
        expectError(header + "import \"a.graph\" x\n", 5, 18, "unexpected name 'x' after the imported file's name")
        expectError(header + "import \"a.graph\n", 5, 8, "unterminated string: no closing '\"' on its line")
        expectError(header + "import \"a\\b.graph\"\n", 5, 10,
                    "unexpected '\\' in a string: there are no escapes (write paths with '/')")
        expectError(header + "import \"caf\u{E9}.graph\"\n", 5, 12,
                    "unexpected non-ASCII character '\u{E9}' (U+00E9) in a string; strings are ASCII")
        expectError(header + "import \"a\tb\"\n", 5, 10, "unexpected control character U+0009 in a string")
        expectError(header + "import \"" + String(repeating: "a", count: 1025) + "\"\n", 5, 8,
                    "string longer than 1024 characters")
        expectError(header + "import \"\"\n", 5, 1,
                    "'import' needs a model compiled from a file: the imported file is looked for in that file's folder")
        expectError(header + "y = relu(\"x\")\n", 5, 10, "expected a value (a number, a name or a [list]), found string \"x\"")
        expectError(header + "block b(x) {\n  import \"a.graph\"\n  y = relu(x)\n  return y\n}\n", 6, 3,
                    "'import' belongs at the top level, not inside block 'b'")
    }

    func testEmptyPathAndDepthLimit() throws {
        try write("m.graph", header + "import \"\"\n")
        XCTAssertEqual(error("m.graph")?.message, "empty file name after 'import'")
        // A chain of 40 files, each importing the next: 32 levels are read, the 33rd is refused.
        for i in 0..<40 { try write("c\(i).graph", "import \"c\(i + 1).graph\"\n") }
        try write("c40.graph", stage)
        try write("deep.graph", header + "import \"c0.graph\"\n")
        let e = try XCTUnwrap(error("deep.graph"))
        XCTAssertEqual(e.message, "imports nested more than \(maxNesting) levels deep")
        XCTAssertEqual(e.notes.count, maxNesting)
    }
}
