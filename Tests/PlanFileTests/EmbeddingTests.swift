// Programs that embed the runtime: the C example (Examples/c/classify.c) compiled against
// fergc.h and libfergc_runtime.so, and the Swift package Examples/swift-embed (opt-in: it
// builds a nested package, which takes minutes in a debug test run).

import Foundation
import Runtime
import TestSupport
import XCTest

final class EmbeddingTests: XCTestCase {
    /// Writes the face plan and a PGM into a temp dir; returns their paths and the expected
    /// probabilities (from a Session in this process).
    func fixture() throws -> (plan: String, image: String, expected: [Float], dir: URL) {
        let dir = try temporaryDirectory(self)
        let plan = try facePlan()
        let planPath = dir.appendingPathComponent("face.plan").path
        try writePlan(plan, to: planPath)
        let pixels = syntheticPixels(7)
        let imagePath = dir.appendingPathComponent("face.pgm").path
        try pgm(pixels, width: 48, height: 48).write(to: URL(fileURLWithPath: imagePath))
        let expected = try Session(try LoadedPlan(path: planPath)).predictRaw(pixels: pixels)[0]
        return (planPath, imagePath, expected, dir)
    }

    /// Parses "  Name  0.123456" lines into (name, probability).
    func probabilities(_ stdout: String) -> [(String, Float)] {
        stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }.compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let p = Float(parts[1]) else { return nil }
            return (String(parts[0]), p)
        }
    }

    func testCExampleBuildsAndClassifies() throws {
        // A sanitized libfergc_runtime.so needs the sanitizer runtime linked into the C program:
        // Tools/sanitize.sh names the toolchain's clang and its flags.
        let environment = ProcessInfo.processInfo.environment
        let sanitizerFlags = environment["FERGC_SANITIZER_CFLAGS"].map { $0.split(separator: " ").map(String.init) } ?? []
        if let sanitizer = environment["FERGC_SANITIZER"], environment["FERGC_SANITIZER_CC"] == nil {
            throw XCTSkip("the library is built with \(sanitizer); set FERGC_SANITIZER_CC and FERGC_SANITIZER_CFLAGS to link the C example")
        }
        let lib = productsDirectory.appendingPathComponent("libfergc_runtime.so")
        guard FileManager.default.fileExists(atPath: lib.path) else {
            throw XCTSkip("\(lib.path) is not built; run 'swift build' (it builds the fergc_runtime dynamic library product) before 'swift test'")
        }
        guard let cc = environment["FERGC_SANITIZER_CC"] ?? ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no C compiler (cc, gcc or clang) in /usr/bin")
        }
        let f = try fixture()
        let exe = f.dir.appendingPathComponent("classify").path
        let build = try runProcess(cc, ["-std=c99", "-Wall", "-Wextra", "-Werror", "-o", exe, "\(repoRoot)/Examples/c/classify.c",
                                        "-I", "\(repoRoot)/Sources/CFergc/include", "-L", productsDirectory.path, "-lfergc_runtime", "-lm"] + sanitizerFlags)
        XCTAssertEqual(build.status, 0, "cc failed:\n\(build.stderr)")
        let env = ["LD_LIBRARY_PATH": [productsDirectory.path, "/opt/swift/usr/lib/swift/linux", ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? ""].joined(separator: ":")]

        let r = try runProcess(exe, [f.plan, f.image], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("plan: face (fergc \(runtimeVersion)), input 1x48x48, 7 classes"), r.stdout)
        let probs = probabilities(r.stdout)
        XCTAssertEqual(probs.map(\.0), ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"], r.stdout)
        for (got, want) in zip(probs.map(\.1), f.expected) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        XCTAssertTrue(r.stdout.contains("emotion: \(fer2013ClassNames[argmax(f.expected)])\n"), r.stdout)

        // The same plan asking for bf16 (AMX or AVX512_BF16 where the CPU has one, f32 elsewhere): the C program
        // needs nothing new, and the probabilities stay close.
        var bf16 = try readPlan(path: f.plan)
        bf16.metadata.computeDType = "bf16"
        let bf16Path = f.dir.appendingPathComponent("bf16.plan").path
        try writePlan(bf16, to: bf16Path)
        let rb = try runProcess(exe, [bf16Path, f.image], environment: env)
        XCTAssertEqual(rb.status, 0, rb.stderr)
        for (got, want) in zip(probabilities(rb.stdout).map(\.1), f.expected) { XCTAssertEqual(got, want, accuracy: 1e-2) }

        // A synthetic image, and errors: a corrupt plan, a wrong-size image.
        let synthetic = try runProcess(exe, [f.plan], environment: env)
        XCTAssertEqual(synthetic.status, 0, synthetic.stderr)
        XCTAssertEqual(probabilities(synthetic.stdout).count, 7)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f.plan)))
        bytes[200] ^= 1
        let corrupt = f.dir.appendingPathComponent("corrupt.plan").path
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        let bad = try runProcess(exe, [corrupt], environment: env)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.hasPrefix("error: \(corrupt): section '"), bad.stderr)
        XCTAssertTrue(bad.stderr.contains("CRC-32 mismatch"), bad.stderr)
        let small = f.dir.appendingPathComponent("small.pgm").path
        try pgm(Array(syntheticPixels(1, side: 32)), width: 32, height: 32).write(to: URL(fileURLWithPath: small))
        let wrong = try runProcess(exe, [f.plan, small], environment: env)
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("image is 32x32"), wrong.stderr)
    }

    /// Builds Examples/swift-embed, a package that depends on the Runtime product alone, and
    /// runs it (about 30 s in debug; FERGC_SKIP_EMBED=1 skips it while iterating).
    func testSwiftEmbedExampleBuildsAndClassifies() throws {
        if ProcessInfo.processInfo.environment["FERGC_SKIP_EMBED"] == "1" {
            throw XCTSkip("FERGC_SKIP_EMBED=1: not building Examples/swift-embed")
        }
        let f = try fixture()
        let scratch = f.dir.appendingPathComponent("embed-build").path
        let swift = ["/opt/swift/usr/bin/swift", "/usr/bin/swift"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/swift"
        let build = try runProcess(swift, ["build", "--package-path", "\(repoRoot)/Examples/swift-embed", "--scratch-path", scratch])
        XCTAssertEqual(build.status, 0, "swift build failed:\n\(build.stdout)\n\(build.stderr)")
        let r = try runProcess("\(scratch)/debug/classify-embed", [f.plan, f.image])
        XCTAssertEqual(r.status, 0, r.stderr)
        let probs = probabilities(r.stdout)
        XCTAssertEqual(probs.count, 7, r.stdout)
        for (got, want) in zip(probs.map(\.1), f.expected) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        XCTAssertTrue(r.stdout.contains("emotion: \(fer2013ClassNames[argmax(f.expected)])\n"), r.stdout)
    }
}
