// fergc predict on photos (the built binary and Models/trained/vgg_tuned.plan): one record per
// face and per faceless photo in each format, error records for damaged files, exit codes,
// annotations and crops, agreement with the original FER faces on the scene, and the C example.

import CZlib
import Foundation
import ImageIO
import Runtime
import TestSupport
import Vision
import XCTest

final class PredictPhotosTests: XCTestCase {
    /// `fergc predict vgg_tuned.plan photos/ --format jsonl`, run once: the trained plan takes
    /// seconds to load in a debug build and detection is slow there. The scene's original
    /// 48x48 faces (written as PGMs, when the FER data is there) go through the same run, after
    /// the photos; `records` holds the photos' records, `originals` the faces' by split index.
    nonisolated(unsafe) static var photosRun: (status: Int32, records: [[String: Any]], stdout: String, originals: [Int: [String: Any]])?

    func photosRecords() throws -> (status: Int32, records: [[String: Any]], stdout: String, originals: [Int: [String: Any]]) {
        let photos = try sharedPhotos()
        _ = try defaultCascade()
        if let r = PredictPhotosTests.photosRun { return r }
        let faces = try originalFaces(photos)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-originals-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths: [String: Int] = [:]
        for (i, px) in faces {
            let path = dir.appendingPathComponent("face\(i).pgm").path
            try (Data("P5\n48 48\n255\n".utf8) + Data(px)).write(to: URL(fileURLWithPath: path))
            paths[path] = i
        }
        let r = try fergc(["predict", trainedPlan, photos + "/", "--format", "jsonl"] + paths.keys.sorted())
        XCTAssertEqual(r.stderr, "")
        let all = try jsonLines(r.stdout)
        var originals: [Int: [String: Any]] = [:]
        var records: [[String: Any]] = []
        for rec in all {
            if let i = paths[rec["file"] as? String ?? ""] { originals[i] = rec } else { records.append(rec) }
        }
        let photoLines = r.stdout.split(separator: "\n").filter { !$0.contains("fergc-originals-") }.joined(separator: "\n") + "\n"
        let run = (r.status, records, photoLines, originals)
        PredictPhotosTests.photosRun = run
        return run
    }

    /// The scene's original faces (FER2013 Training rows by index_in_split), read through zlib
    /// from ../shared/data (the file is large: reading stops early); empty without the file.
    func originalFaces(_ photos: String) throws -> [Int: [UInt8]] {
        let data = "\(photos)/../data/fer2013-trainval.csv.gz"
        guard FileManager.default.fileExists(atPath: data), let gz = gzopen(data, "rb") else { return [:] }
        defer { gzclose(gz) }
        let wanted = Set(try loadScene(photos).faces.map(\.index))
        var originals: [Int: [UInt8]] = [:]
        var buf = [CChar](repeating: 0, count: 1 << 16)
        var k = 0
        _ = gzgets(gz, &buf, Int32(buf.count))
        while originals.count < wanted.count, gzgets(gz, &buf, Int32(buf.count)) != nil {
            let fields = textUpToNUL(buf).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",")
            guard fields.count == 3, fields[2] == "Training" else { continue }
            if wanted.contains(k) { originals[k] = fields[1].split(separator: " ").compactMap { UInt8($0) } }
            k += 1
        }
        return originals
    }

    func testEveryFormatGivesOneRecordPerFaceAndPerFacelessPhoto() throws {
        let photos = try sharedPhotos()
        let run = try photosRecords()
        XCTAssertEqual(run.status, 0)
        let faces = run.records.filter { $0["status"] as? String == "face" }
        let noFace = run.records.filter { $0["status"] as? String == "no_face" }
        func name(_ r: [String: Any]) -> String { ((r["file"] as? String ?? "") as NSString).lastPathComponent }
        XCTAssertEqual(Dictionary(grouping: faces, by: name).mapValues(\.count), ["astronaut.jpg": 1, "astronaut.png": 1, "fer-training-scene.jpg": 9])
        XCTAssertEqual(Set(noFace.map(name)), ["camera.png", "chelsea.png", "coffee.png", "rocket.jpg"])
        XCTAssertEqual(run.records.count, 15)
        for f in faces {
            let p = try XCTUnwrap(f["probabilities"] as? [String: Double])
            XCTAssertEqual(Set(p.keys), Set(fer2013ClassNames))
            XCTAssertEqual(p.values.reduce(0, +), 1, accuracy: 1e-4)
            XCTAssertEqual(f["emotion"] as? String, p.max { $0.value < $1.value }?.key)
            XCTAssertEqual((f["box"] as? [Int])?.count, 4)
        }

        // CSV and table, with the boxes of the JSONL (--boxes: no detection) and the tiny plan
        // (the trained one takes seconds to load in a debug build): the same records, file by
        // file and box by box; the emotions are the tiny model's.
        let dir = try temporaryDirectory(self)
        let boxes = dir.appendingPathComponent("boxes.jsonl").path
        try run.stdout.write(toFile: boxes, atomically: true, encoding: .utf8)
        let tiny = try tinyPlan()
        let csv = try fergc(["predict", tiny, photos + "/", "--boxes", boxes, "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let rows = csv.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.first?.prefix(9), ["file", "face", "status", "x", "y", "width", "height", "emotion", "score"])
        XCTAssertEqual(rows.count, 1 + 15)
        for (row, rec) in zip(rows.dropFirst(), run.records) {
            XCTAssertEqual(row[0], rec["file"] as? String)
            XCTAssertEqual(row[2], rec["status"] as? String)
            if rec["status"] as? String == "face" {
                XCTAssertEqual(row[3..<7].compactMap { Int($0) }, rec["box"] as? [Int])
                XCTAssertTrue(fer2013ClassNames.contains(row[7]), row[7])
                XCTAssertEqual(row[9..<16].compactMap(Double.init).reduce(0, +), 1, accuracy: 1e-4)
            }
        }
        let table = try fergc(["predict", tiny, photos + "/", "--boxes", boxes, "--format", "table"])
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1 + 15)
        XCTAssertEqual(lines.filter { $0.contains("no face") }.count, 4)
        XCTAssertTrue(lines.contains { $0.contains("astronaut.png") && $0.contains("[177, 66, 95, 95]") }, table.stdout)
    }

    func testDamagedFilesGiveErrorRecordsAndExitOne() throws {
        let photos = try sharedPhotos()
        let dir = try temporaryDirectory(self)
        let jpg = try Data(contentsOf: URL(fileURLWithPath: "\(photos)/astronaut.jpg"))
        try jpg.prefix(jpg.count / 2).write(to: dir.appendingPathComponent("truncated.jpg"))
        try Data("not a picture\n".utf8).write(to: dir.appendingPathComponent("x.png"))
        // A 48x48 face (taken whole: no detection) and a file that is not an image by name.
        try (Data("P5\n48 48\n255\n".utf8) + Data((0..<2304).map { UInt8($0 % 251) })).write(to: dir.appendingPathComponent("face.pgm"))
        try Data("notes".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        let plan = try tinyPlan()
        let r = try fergc(["predict", plan, dir.path, "--format", "jsonl"])
        XCTAssertEqual(r.status, 1, r.stderr)
        let records = try jsonLines(r.stdout)
        let errors = records.filter { $0["status"] as? String == "error" }
        XCTAssertEqual(Set(errors.compactMap { ($0["file"] as? String).map { ($0 as NSString).lastPathComponent } }), ["truncated.jpg", "x.png"])
        for e in errors { XCTAssertFalse((e["error"] as? String ?? "").isEmpty) }
        XCTAssertEqual(records.filter { $0["status"] as? String == "face" }.count, 1)
        XCTAssertEqual(records.count, 3)
        XCTAssertTrue(r.stderr.contains("2 of 3 input(s) failed"), r.stderr)

        // The same list on stdin ('-').
        let list = ["face.pgm", "x.png"].map { dir.appendingPathComponent($0).path }.joined(separator: "\n") + "\n"
        let s = try fergc(["predict", plan, "-", "--format", "csv"], input: list)
        XCTAssertEqual(s.status, 1)
        XCTAssertEqual(s.stdout.split(separator: "\n").count, 3, s.stdout)
    }

    func testExitCodesAndHelp() throws {
        let dir = try temporaryDirectory(self)
        let tiny = try tinyPlan()
        let help = try fergc(["predict", "--help"])
        XCTAssertEqual(help.status, 0)
        for code in ["0   every input", "1   some inputs failed", "64  usage", "65  the plan", "66  no input"] {
            XCTAssertTrue(help.stdout.contains(code), "help lacks '\(code)':\n\(help.stdout)")
        }
        let usage = try fergc(["predict", tiny, dir.path, "--format", "xml"])
        XCTAssertEqual(usage.status, 64)
        XCTAssertTrue(usage.stderr.contains("--format expects table, jsonl or csv"), usage.stderr)
        let badPlan = dir.appendingPathComponent("bad.plan").path
        try Data("not a plan".utf8).write(to: URL(fileURLWithPath: badPlan))
        let plan = try fergc(["predict", badPlan, dir.path])
        XCTAssertEqual(plan.status, 65, plan.stderr)
        XCTAssertTrue(plan.stderr.contains(badPlan), plan.stderr)
        let empty = try fergc(["predict", tiny, dir.path])
        XCTAssertEqual(empty.status, 66, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("no input"), empty.stderr)
        let missing = try fergc(["predict", tiny, dir.appendingPathComponent("nope.jpg").path])
        XCTAssertEqual(missing.status, 66, missing.stderr)
        // Sub-directories only with -r.
        let nested = dir.appendingPathComponent("nested/deeper")
        try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: true)
        try (Data("P5\n48 48\n255\n".utf8) + Data(count: 2304)).write(to: nested.appendingPathComponent("f.pgm"))
        let flat = try fergc(["predict", tiny, dir.appendingPathComponent("nested").path])
        XCTAssertEqual(flat.status, 66, flat.stderr)
        let deep = try fergc(["predict", tiny, dir.appendingPathComponent("nested").path, "-r", "--format", "jsonl"])
        XCTAssertEqual(deep.status, 0, deep.stderr)
        XCTAssertEqual(try jsonLines(deep.stdout).map { $0["file"] as? String }, [nested.appendingPathComponent("f.pgm").path])
        // A cascade that cannot be read: 65, before any image.
        let face = dir.appendingPathComponent("face.pgm").path
        try (Data("P5\n48 48\n255\n".utf8) + Data(count: 2304)).write(to: URL(fileURLWithPath: face))
        let cascade = try fergc(["predict", tiny, face, "--cascade", "/nonexistent.xml"])
        XCTAssertEqual(cascade.status, 65, cascade.stderr)
        XCTAssertTrue(cascade.stderr.contains("/nonexistent.xml: cannot read the cascade file"), cascade.stderr)
    }

    func testAnnotateAndSaveCrops() throws {
        let photos = try sharedPhotos()
        _ = try defaultCascade()
        let dir = try temporaryDirectory(self)
        let ann = dir.appendingPathComponent("ann").path, crops = dir.appendingPathComponent("crops").path
        let r = try fergc(["predict", try tinyPlan(), "\(photos)/astronaut.png", "\(photos)/coffee.png", "--annotate", ann, "--save-crops", crops, "--format", "jsonl"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let a = try ImageIO.read(path: "\(ann)/astronaut.png")
        XCTAssertEqual([a.width, a.height, a.channels], [512, 512, 3])
        let original = try ImageIO.read(path: "\(photos)/astronaut.png")
        XCTAssertNotEqual(a.pixels, original.pixels)  // boxes and labels drawn
        XCTAssertEqual(try ImageIO.read(path: "\(ann)/coffee.png").width, 600)
        // The crop the model saw equals the crop rule applied here.
        let crop = try ImageIO.read(path: "\(crops)/astronaut-face0.png")
        XCTAssertEqual([crop.width, crop.height, crop.channels], [48, 48, 1])
        let gray = original.gray()
        let mine = gray.withGrayView { CropRule.standard.crop($0, box: Box(x: 177, y: 66, width: 95, height: 95), side: 48) }
        XCTAssertEqual(crop.pixels, mine)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: crops), ["astronaut-face0.png"])

        // --detector none: the whole photo is the face, resized to 48x48 as it is.
        let none = try fergc(["predict", try tinyPlan(), "\(photos)/coffee.png", "--detector", "none", "--save-crops", crops, "--format", "jsonl"])
        XCTAssertEqual(none.status, 0, none.stderr)
        XCTAssertEqual(try jsonLines(none.stdout).first?["box"] as? [Int], [0, 0, 600, 400])
        let whole = try ImageIO.read(path: "\(crops)/coffee-face0.png")
        let coffee = try ImageIO.read(path: "\(photos)/coffee.png").gray()
        XCTAssertEqual(whole.pixels, coffee.withGrayView { CropRule.standard.resizeWhole($0, side: 48) })
    }

    /// The scene's detected faces against the 48x48 originals (FER2013 Training rows by
    /// index_in_split): at least 7 of the 9 get the same top emotion.
    func testSceneEmotionsAgreeWithTheOriginalFaces() throws {
        let photos = try sharedPhotos()
        guard FileManager.default.fileExists(atPath: "\(photos)/../data/fer2013-trainval.csv.gz") else { throw XCTSkip("../shared/data/fer2013-trainval.csv.gz is missing") }
        let scene = try loadScene(photos)
        let run = try photosRecords()
        XCTAssertEqual(run.originals.count, 12)
        for (_, r) in run.originals { XCTAssertEqual(r["box"] as? [Int], [0, 0, 48, 48]) }
        let detected = run.records.filter { ($0["file"] as? String ?? "").hasSuffix("fer-training-scene.jpg") && $0["status"] as? String == "face" }
        XCTAssertEqual(detected.count, 9)
        var agree = 0, compared = 0
        for d in detected {
            let b = try XCTUnwrap(d["box"] as? [Int])
            let box = Box(x: b[0], y: b[1], width: b[2], height: b[3])
            let pasted = try XCTUnwrap(scene.faces.max { Box(x: $0.box[0], y: $0.box[1], width: $0.box[2], height: $0.box[3]).iou(box) < Box(x: $1.box[0], y: $1.box[1], width: $1.box[2], height: $1.box[3]).iou(box) })
            compared += 1
            if run.originals[pasted.index]?["emotion"] as? String == d["emotion"] as? String { agree += 1 }
        }
        XCTAssertEqual(compared, 9)
        XCTAssertGreaterThanOrEqual(agree, 7, "only \(agree) of 9 detected faces agree with their original")
    }

    /// Examples/c/detect.c, built against fergc.h and libfergc_runtime.so, on the astronaut (with
    /// Models/tiny.graph's plan: the C library's detection and classification against the
    /// Swift API's in this process).
    func testCExampleDetectsAndClassifiesTheAstronaut() throws {
        // A sanitized libfergc_runtime.so needs the sanitizer runtime linked into the C program:
        // Tools/sanitize.sh names the toolchain's clang and its flags.
        let environment = ProcessInfo.processInfo.environment
        let sanitizerFlags = environment["FERGC_SANITIZER_CFLAGS"].map { $0.split(separator: " ").map(String.init) } ?? []
        if let sanitizer = environment["FERGC_SANITIZER"], environment["FERGC_SANITIZER_CC"] == nil {
            throw XCTSkip("the library is built with \(sanitizer); set FERGC_SANITIZER_CC and FERGC_SANITIZER_CFLAGS to link the C example")
        }
        let photos = try sharedPhotos()
        _ = try defaultCascade()
        let lib = productsDirectory.appendingPathComponent("libfergc_runtime.so")
        guard FileManager.default.fileExists(atPath: lib.path) else { throw XCTSkip("\(lib.path) is not built; run 'swift build' first") }
        guard let cc = environment["FERGC_SANITIZER_CC"] ?? ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no C compiler in /usr/bin")
        }
        let dir = try temporaryDirectory(self)
        let exe = dir.appendingPathComponent("detect").path
        let build = try runProcess(cc, ["-std=c99", "-Wall", "-Wextra", "-Werror", "-o", exe, "\(repoRoot)/Examples/c/detect.c",
                                        "-I", "\(repoRoot)/Sources/CFergc/include", "-L", productsDirectory.path, "-lfergc_runtime"] + sanitizerFlags)
        XCTAssertEqual(build.status, 0, "cc failed:\n\(build.stderr)")
        let astro = try ImageIO.read(path: "\(photos)/astronaut.png")
        let ppm = dir.appendingPathComponent("astronaut.ppm").path
        try (Data("P6\n512 512\n255\n".utf8) + Data(astro.pixels)).write(to: URL(fileURLWithPath: ppm))
        let env = ["LD_LIBRARY_PATH": [productsDirectory.path, "/opt/swift/usr/lib/swift/linux"].joined(separator: ":")]
        let plan = try tinyPlan()
        let r = try runProcess(exe, [plan, ppm], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("512x512, 1 face(s)"), r.stdout)
        // "face 0: box [x, y, w, h] Emotion p | Angry p ..."
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("face 0: box [") })
        let nums = line.split(separator: "[")[1].split(separator: "]")[0].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        XCTAssertEqual(nums.count, 4)
        XCTAssertGreaterThanOrEqual(Box(x: nums[0], y: nums[1], width: nums[2], height: nums[3]).iou(Box(x: 177, y: 66, width: 95, height: 95)), 0.8)
        // The same probabilities as the Swift API in this process.
        let session = try Session(try LoadedPlan(path: plan))
        let faces = try astro.pixels.withUnsafeBufferPointer {
            try session.detectAndClassify(rgb: $0.baseAddress!, width: 512, height: 512, stride: 1536, detector: try DetectionTests.detector())
        }
        XCTAssertEqual(faces.count, 1)
        let printed = line.split(separator: "|")[1].split(separator: " ").enumerated().filter { $0.offset % 2 == 1 }.compactMap { Float($0.element) }
        XCTAssertEqual(printed.count, 7, String(line))
        for (got, want) in zip(printed, faces[0].probabilities) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        // Errors: a bad cascade path.
        let bad = try runProcess(exe, [plan, ppm, "/nonexistent.xml"], environment: env)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("/nonexistent.xml"), bad.stderr)
    }
}
