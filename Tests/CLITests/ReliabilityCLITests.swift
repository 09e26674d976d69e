// Regression tests for the reliability audit (../shared/design/reliability-audit.md, issue 17),
// each reproducing the audit's command on the built binary and asserting a clear error or the
// correct behaviour. Test names carry the finding (issue number / audit id).

import Foundation
import NumPyIO
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class ReliabilityCLITests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-rel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    /// tiny's weights from a short run, flat as checkpoints store them.
    func tinyWeights() throws -> [(name: String, array: NDArray)] {
        let run = path("base")
        let r = try fergc(["train", "Models/tiny.graph", "--out", run, "--max-steps", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try NumPyIO.readNPZ(path: run + "/checkpoint-last.npz").filter {
            !$0.name.hasPrefix("adam") && !$0.name.hasPrefix("optimizer") && !$0.name.hasPrefix("__")
        }
    }

    func assertClearError(_ r: Result, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, "stdout: \(r.stdout) stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(needle), "expected '\(needle)' in: \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Swift runtime failure"), r.stderr, file: file, line: line)
    }

    /// `fergc predict` goes on past a bad input: exit 1, the reason in that input's error record.
    func assertErrorRecord(_ r: Result, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, "stdout: \(r.stdout) stderr: \(r.stderr)", file: file, line: line)
        let records = r.stdout.split(separator: "\n").filter { $0.contains("\"status\":\"error\"") }
        XCTAssertEqual(records.count, 1, r.stdout, file: file, line: line)
        XCTAssertTrue(records.first?.contains(needle) ?? false, "expected '\(needle)' in: \(r.stdout)", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Swift runtime failure"), r.stderr, file: file, line: line)
    }

    // #1 / R1: a seed >= 2^63 trains (it is logged as an unsigned number).
    func testSeedAbove2To63Trains() throws {
        let r = try fergc(["train", "Models/tiny.graph", "--seed", "9223372036854775808", "--max-steps", "1", "--out", path("r1")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let log = try String(contentsOfFile: path("r1") + "/events.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains("\"seed\":9223372036854775808"), log)
    }

    // #2, #3 / R2, R3: --batch beyond the plan limit is a usage error for compile and train.
    func testHugeBatchIsAUsageError() throws {
        for args in [["compile", "Models/tiny.graph", "--batch", "9223372036854775807", "-o", path("x.plan")],
                     ["train", "Models/tiny.graph", "--batch", "9223372036854775807", "--out", path("r2")],
                     ["train", "Models/tiny.graph", "--batch", "2000000", "--out", path("r3")]] {
            let r = try fergc(args)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("--batch expects an integer in 1...1048576"), r.stderr)
        }
    }

    // A byte count beyond what an Int holds is a usage error, not a trap in the conversion.
    func testHugeByteCountsAreUsageErrors() throws {
        for args in [["compile", "Models/tiny.graph", "--max-memory", "1e300", "-o", path("x.plan")],
                     ["train", "Models/tiny.graph", "--prefix-cache", "9000000000G", "--out", path("pc")]] {
            let r = try fergc(args)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("expects bytes like 500000000, 512M or 2G (under 2^62)"), r.stderr)
        }
    }

    // #5 / R6: a failing event log (here /dev/full) warns and the training goes on.
    func testEventLogWriteFailureIsAWarning() throws {
        let run = path("full")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--max-steps", "1"]).status, 0)
        try FileManager.default.removeItem(atPath: run + "/events.jsonl")
        try FileManager.default.createSymbolicLink(atPath: run + "/events.jsonl", withDestinationPath: "/dev/full")
        let r = try fergc(["train", "--resume", run, "--max-steps", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("events.jsonl: No space left on device"), r.stderr)
    }

    /// Rewrites the JSON record of a checkpoint with `edit`.
    func editRecord(_ file: String, _ edit: (inout [String: Any]) -> Void) throws {
        var members = try NumPyIO.readNPZ(path: file)
        let i = try XCTUnwrap(members.firstIndex { $0.name == "__meta__" })
        var meta = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(members[i].array.data)) as? [String: Any])
        edit(&meta)
        let json = try JSONSerialization.data(withJSONObject: meta)
        members[i].array = NDArray(bytes: Array(json), shape: [json.count])
        try NumPyIO.writeNPZ(members, compressed: false, to: file)
    }

    // #6 / R9: negative counters in a checkpoint record are a clear error, not a trap; so are
    // counters near Int.max, which the run's next step once overflowed (found by mutating
    // checkpoints: partialSeen = Int.max).
    func testNegativeCheckpointCountersAreRefused() throws {
        let run = path("neg")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--max-steps", "5"]).status, 0)
        let file = run + "/checkpoint-last.npz"
        let original = try Data(contentsOf: URL(fileURLWithPath: file))
        for (key, value) in [("batch", -5), ("epoch", -3), ("iteration", -1), ("batch", 1_000_000_000),
                             ("partialSeen", Int.max), ("iteration", Int.max), ("finishEpochs", -1), ("finishEpochs", Int.max)] {
            try original.write(to: URL(fileURLWithPath: file))
            try editRecord(file) { $0[key] = value }
            let r = try fergc(["train", "Models/tiny.graph", "--resume", run, "--max-steps", "1"])
            assertClearError(r, "the checkpoint record is inconsistent")
        }
        // An epoch count whose steps would overflow Int (epochs x steps per epoch): refused from
        // the record and from the command line alike (it once trapped in the schedule).
        try original.write(to: URL(fileURLWithPath: file))
        try editRecord(file) { $0["epochs"] = Int.max }
        assertClearError(try fergc(["train", "Models/tiny.graph", "--resume", run, "--max-steps", "1"]),
                         "\(Int.max) epochs: a run has 1 to 2147483647")
        let huge = try fergc(["train", "Models/tiny.graph", "--epochs", "\(Int.max)", "--out", path("huge"), "--max-steps", "1"])
        XCTAssertEqual(huge.status, 2, huge.stderr)
        XCTAssertTrue(huge.stderr.contains("--epochs expects an integer in 1...2147483647"), huge.stderr)
    }

    // #7 / R10: report with a history holding +-1e308 writes its charts.
    func testReportWithExtremeHistory() throws {
        let run = path("rep")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--epochs", "1", "--max-steps", "100"]).status, 0)
        try editRecord(run + "/checkpoint-last.npz") { meta in
            var history = meta["history"] as! [[String: Any]]
            history[0]["loss"] = 1e308
            history[0]["valLoss"] = -1e308
            meta["history"] = history
        }
        let r = try fergc(["report", run])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// The tensors of a checkpoint (not its record, which holds elapsed seconds).
    func checkpointTensors(_ file: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for (name, array) in try NumPyIO.readNPZ(path: file) where name != "__meta__" { out[name] = array.data }
        return out
    }

    // #8 / L1: killed exactly at the rename that follows the best checkpoint's (strace's fault
    // injection, as in the audit), the run resumes and ends with the uninterrupted run's best;
    // the resumed run names only checkpoints that exist.
    func testKillBetweenCheckpointRenamesLosesNoBest() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/strace") else { throw XCTSkip("needs /usr/bin/strace") }
        let whole = path("whole")
        let args = ["train", "Models/tiny.graph", "--epochs", "2", "--checkpoint-every", "50"]
        XCTAssertEqual(try fergc(args + ["--out", whole]).status, 0)
        let run = path("killed")
        // Renames: step 50 last (1), epoch 1 best (2), epoch 1 last (3): killed entering rename 3.
        let killed = try runTool("/usr/bin/strace", ["-f", "-o", "/dev/null", "-e", "trace=rename", "-e", "inject=rename:signal=KILL:when=3",
                                                    productsDirectory.appendingPathComponent("fergc").path] + args + ["--out", run])
        XCTAssertNotEqual(killed.status, 0, "the run was not killed: \(killed.stderr)")
        let resumed = try fergc(["train", "--resume", run])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        for line in resumed.stdout.split(separator: "\n") where line.hasPrefix("checkpoints: ") {
            for file in [run + "/checkpoint-best.npz", run + "/checkpoint-last.npz"] where line.contains(file) {
                XCTAssertTrue(FileManager.default.fileExists(atPath: file), "\(line) names a missing file")
            }
        }
        XCTAssertEqual(try checkpointTensors(run + "/checkpoint-best.npz"), try checkpointTensors(whole + "/checkpoint-best.npz"))
        XCTAssertEqual(try checkpointTensors(run + "/checkpoint-last.npz"), try checkpointTensors(whole + "/checkpoint-last.npz"))
    }

    // #8 / L1, L2: a run stopped before its first epoch end names only its last checkpoint;
    // stale checkpoint temp files are removed on resume.
    func testResumeNamesOnlyExistingCheckpointsAndCleansTemps() throws {
        let run = path("l2")
        let first = try fergc(["train", "Models/tiny.graph", "--out", run, "--epochs", "2", "--max-steps", "3"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("checkpoints: \(run)/checkpoint-last.npz (last)"), first.stdout)
        XCTAssertFalse(first.stdout.contains("(best)"), first.stdout)
        let stale = run + "/.checkpoint-best.npz.tmp-999999-1"
        try Data(count: 100).write(to: URL(fileURLWithPath: stale))
        let stop = try fergc(["train", "--resume", run, "--max-steps", "1"])
        XCTAssertEqual(stop.status, 0, stop.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
    }

    // #9 / L3: a second trainer on a locked run directory refuses clearly.
    func testSecondTrainerOnARunDirectoryRefuses() throws {
        let run = path("lock")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--max-steps", "1"]).status, 0)
        // Hold the lock as another trainer would.
        let fd = open(run + "/.lock", O_RDWR)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        let r = try fergc(["train", "--resume", run, "--max-steps", "1"])
        assertClearError(r, "is in use by another fergc train")
    }

    // #10 / L5: eval beside a read-only directory still prints its results.
    func testEvalPrintsResultsWhenImagesCannotBeWritten() throws {
        let run = path("ro")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--max-steps", "2"]).status, 0)
        // A FIFO where the SVG goes makes the image write fail as a read-only directory would
        // (root ignores directory permissions).
        XCTAssertEqual(mkfifo(run + "/confusion-PublicTest.svg", 0o644), 0)
        let r = try fergc(["eval", run + "/checkpoint-last.npz"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("accuracy"), r.stdout)
        XCTAssertTrue(r.stderr.contains("the confusion images were not written"), r.stderr)
    }

    // #11 / H2: FIFOs as graph, weights, CSV and PGM are refused at once.
    func testFIFOInputsAreRefused() throws {
        for name in ["f.npz", "f.graph", "f.csv", "f.pgm"] { XCTAssertEqual(mkfifo(path(name), 0o644), 0) }
        assertClearError(try fergc(["compile", "Models/tiny.graph", "--weights", path("f.npz"), "-o", path("y.plan")]), "FIFO")
        assertClearError(try fergc(["compile", path("f.graph"), "--summary"]), "FIFO")
        assertClearError(try fergc(["data", "summary", path("f.csv"), "--grid", path("grid.png")]), "FIFO")
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "-o", path("t.plan")]).status, 0)
        assertErrorRecord(try fergc(["predict", path("t.plan"), path("f.pgm"), "--format", "jsonl"]), "FIFO")
    }

    // #15 / R11: a zip bomb is refused from its declared sizes, before inflating.
    func testZipBombWeightsAreRefusedBeforeInflating() throws {
        // A stored member declaring 64 MB with a small real body: the declared size alone refuses it.
        let big = NDArray(floats: [Float](repeating: 0, count: 16 << 20), shape: [16 << 20])
        try NumPyIO.writeNPZ([("c1.weight", big)], compressed: true, to: path("bomb.npz"))
        let size = try FileManager.default.attributesOfItem(atPath: path("bomb.npz"))[.size] as! Int
        XCTAssertLessThan(size, 1 << 20)
        let r = try fergc(["compile", "Models/tiny.graph", "--weights", path("bomb.npz"), "-o", path("z.plan")])
        assertClearError(r, "refused before inflating")
    }

    // #26 / W7: an archive with two members of the same name is refused (the last would win).
    func testDuplicateNPZMembersAreRefused() throws {
        let w = NDArray(floats: [Float](repeating: 0.1, count: 36), shape: [36])
        try NumPyIO.writeNPZ([("c1.weight", w), ("c1.weight", w)], compressed: false, to: path("dup.npz"))
        assertClearError(try fergc(["compile", "Models/tiny.graph", "--weights", path("dup.npz"), "-o", path("d.plan")]),
                         "two members are named 'c1.weight.npy'")
    }

    // #16 / H3: CR-only line endings read every row.
    func testCROnlyCSVReadsEveryRow() throws {
        let rows = ["emotion,pixels,Usage"] + (0..<3).map { i in "\(i),\((0..<2304).map { _ in "7" }.joined(separator: " ")),Training" }
        try Data(rows.joined(separator: "\r").utf8).write(to: URL(fileURLWithPath: path("cr.csv")))
        let r = try fergc(["data", "summary", path("cr.csv"), "--grid", path("grid.png")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("3"), r.stdout)
        XCTAssertFalse(r.stdout.contains("wrote the first 0 faces"), r.stdout)
    }

    // #17 / W2: a Keras-layout (HWIO) conv weight is refused; flat and exact shapes are accepted.
    func testWeightShapesMustMatch() throws {
        var w = try tinyWeights()
        try NumPyIO.writeNPZ(w, compressed: false, to: path("flat.npz"))
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "--weights", path("flat.npz"), "-o", path("f.plan")]).status, 0)
        let i = try XCTUnwrap(w.firstIndex { $0.name == "c1.weight" })
        w[i].array = NDArray(floats: w[i].array.floats, shape: [3, 3, 1, 4])
        try NumPyIO.writeNPZ(w, compressed: false, to: path("hwio.npz"))
        assertClearError(try fergc(["compile", "Models/tiny.graph", "--weights", path("hwio.npz"), "-o", path("h.plan")]),
                         "'c1.weight' has shape [3, 3, 1, 4], the model expects [4, 1, 3, 3]")
    }

    // #18 / W3: NaN weights are refused by compile, naming the tensor.
    func testNaNWeightsAreRefused() throws {
        var w = try tinyWeights()
        let i = try XCTUnwrap(w.firstIndex { $0.name == "c1.weight" })
        w[i].array = NDArray(floats: [Float](repeating: .nan, count: 36), shape: [36])
        try NumPyIO.writeNPZ(w, compressed: false, to: path("nan.npz"))
        assertClearError(try fergc(["compile", "Models/tiny.graph", "--weights", path("nan.npz"), "-o", path("n.plan")]),
                         "tensor 'c1.weight' holds a non-finite value")
    }

    // #18 / W3: a checkpoint with NaN weights is refused at resume.
    func testNaNCheckpointIsRefusedAtResume() throws {
        let run = path("nanrun")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--max-steps", "2"]).status, 0)
        let file = run + "/checkpoint-last.npz"
        var members = try NumPyIO.readNPZ(path: file)
        let i = try XCTUnwrap(members.firstIndex { $0.name == "c1.weight" })
        members[i].array = NDArray(floats: [Float](repeating: .nan, count: 36), shape: [36])
        try NumPyIO.writeNPZ(members, compressed: false, to: file)
        assertClearError(try fergc(["train", "--resume", run, "--max-steps", "1"]), "tensor 'c1.weight' holds a non-finite value")
    }

    // #19 / W1: resume uses the run's data and refuses another epoch count without --force-resume.
    func testResumePinsDataAndEpochs() throws {
        let csv = path("custom.csv")
        // 120 rows of the sample: header + rows in its own file.
        let text = try XCTUnwrap(String(data: try gunzip(repoRoot.appendingPathComponent("Data/fer2013-sample.csv.gz")), encoding: .utf8))
        try text.split(separator: "\n").prefix(121).joined(separator: "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        let run = path("dd")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--data", csv, "--out", run, "--max-steps", "2"]).status, 0)
        let resumed = try fergc(["train", "--resume", run, "--max-steps", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("loading \(csv)"), resumed.stderr)
        assertClearError(try fergc(["train", "--resume", run, "--epochs", "5", "--max-steps", "1"]), "--force-resume")
        assertClearError(try fergc(["train", "--resume", run, "--data", "Data/fer2013-sample.csv.gz", "--max-steps", "1"]), "the run trained on")
        XCTAssertEqual(try fergc(["train", "--resume", run, "--epochs", "5", "--max-steps", "1", "--force-resume"]).status, 0)
    }

    // A run started with a seed and batch other than the model's (tiny: 7, 16) resumes with
    // --resume alone; naming the model's own seed or batch then is refused.
    func testResumeTakesSeedAndBatchFromTheRun() throws {
        let run = path("seeded")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--seed", "3", "--batch", "8", "--max-steps", "2"]).status, 0)
        let resumed = try fergc(["train", "--resume", run, "--max-steps", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        assertClearError(try fergc(["train", "--resume", run, "--seed", "7", "--max-steps", "1"]), "used seed 3 and batch 8")
        assertClearError(try fergc(["train", "--resume", run, "--batch", "16", "--max-steps", "1"]), "used seed 3 and batch 8")
    }

    // A run started with --checkpoint-every keeps checkpointing mid-epoch after --resume alone.
    func testResumeKeepsTheCheckpointInterval() throws {
        let run = path("every")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--checkpoint-every", "2", "--max-steps", "3"]).status, 0)
        let resumed = try fergc(["train", "--resume", run, "--max-steps", "4"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let events = try String(contentsOfFile: run + "/events.jsonl", encoding: .utf8).split(separator: "\n")
        let resumeAt = try XCTUnwrap(events.firstIndex { $0.contains("\"event\":\"resume\"") })
        let after = events[resumeAt...].filter { $0.contains("\"event\":\"checkpoint\"") }
        XCTAssertTrue(after.contains { $0.contains("\"iteration\":4") }, "no checkpoint at step 4 after the resume:\n\(events.joined(separator: "\n"))")
    }

    // --checkpoint-every 0 turns a resumed run's interval off, and the run keeps it off on the
    // next --resume: only epoch ends and the stop are saved from then on.
    func testCheckpointEveryZeroTurnsTheIntervalOff() throws {
        let run = path("every0")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--out", run, "--checkpoint-every", "2", "--max-steps", "3"]).status, 0)
        let off = try fergc(["train", "--resume", run, "--checkpoint-every", "0", "--max-steps", "5"])
        XCTAssertEqual(off.status, 0, off.stderr)
        let again = try fergc(["train", "--resume", run, "--max-steps", "7"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let events = try String(contentsOfFile: run + "/events.jsonl", encoding: .utf8).split(separator: "\n")
        let resumeAt = try XCTUnwrap(events.firstIndex { $0.contains("\"event\":\"resume\"") })
        let after = events[resumeAt...].filter { $0.contains("\"event\":\"checkpoint\"") }
        for step in [4, 6] {
            XCTAssertFalse(after.contains { $0.contains("\"iteration\":\(step),") || $0.contains("\"iteration\":\(step)}") },
                           "a checkpoint at step \(step) with the interval off:\n\(events.joined(separator: "\n"))")
        }
        let negative = try fergc(["train", "Models/tiny.graph", "--out", path("neg"), "--checkpoint-every", "-1", "--max-steps", "1"])
        XCTAssertEqual(negative.status, 2, negative.stderr)  // a usage error
        XCTAssertTrue(negative.stderr.contains("--checkpoint-every expects an integer in 0..."), negative.stderr)
    }

    // #20 / W10, U9: run refuses float labels and reports a huge label as it is.
    func testRunRefusesInexactLabels() throws {
        let w = try tinyWeights()
        var shaped: [(name: String, array: NDArray)] = []
        let shapes = ["c1.weight": [4, 1, 3, 3], "c2.weight": [8, 4, 3, 3], "d1.weight": [16, 72], "logits.weight": [7, 16]]
        for (name, a) in w { shaped.append((name, NDArray(floats: a.floats, shape: shapes[name] ?? a.shape))) }
        try NumPyIO.writeNPZ(shaped, compressed: false, to: path("shaped.npz"))
        let x = NDArray(floats: [Float](repeating: 0.5, count: 4 * 2304), shape: [4, 1, 48, 48])
        for labels in [NDArray(floats: [0, 2.5, 2, 3], shape: [4]), NDArray(dtype: .int64, shape: [4], data: [Int64(0), 1, 2, 1_099_511_627_776].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } })] {
            try NumPyIO.writeNPZ([("x", x), ("labels", labels)], compressed: false, to: path("in.npz"))
            let r = try fergc(["run", "Models/tiny.graph", "--weights", path("shaped.npz"), "--input", path("in.npz"), "--train", "--dump", path("d.npz")])
            assertClearError(r, "not all exact Int32 integers")
        }
    }

    // #21 / L4: -o refuses a device node and a FIFO, and writes through a symlink.
    func testOutputRefusesSpecialFilesAndFollowsSymlinks() throws {
        XCTAssertEqual(mknod(path("fakenull"), S_IFCHR | 0o666, dev_t((1 << 8) | 3)), 0)
        assertClearError(try fergc(["compile", "Models/tiny.graph", "-o", path("fakenull")]), "is a device node")
        var st = stat()
        XCTAssertEqual(lstat(path("fakenull"), &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(mkfifo(path("out.plan"), 0o644), 0)
        assertClearError(try fergc(["compile", "Models/tiny.graph", "-o", path("out.plan")]), "is a FIFO")
        try FileManager.default.createSymbolicLink(atPath: path("link.plan"), withDestinationPath: "target.plan")
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "-o", path("link.plan")]).status, 0)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path("link.plan")), "target.plan")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("target.plan")))
    }

    // #23 / H1 (graph), R1 (graph seed): a huge pool window compiles in time (clipped windows)
    // and a train-block seed >= 2^63 trains.
    func testHugePoolWindowInAGraphAndHugeGraphSeed() throws {
        let source = try String(contentsOf: repoRoot.appendingPathComponent("Models/tiny.graph"), encoding: .utf8)
        let pool = source.replacingOccurrences(of: "p2 = maxpool(c2, size=2, stride=2, padding=same)", with: "p2q = maxpool(c2, size=2147483647, stride=1, padding=same)\np2 = maxpool(p2q, size=2, stride=2, padding=same)")
        XCTAssertNotEqual(pool, source)
        try pool.write(toFile: path("pool.graph"), atomically: true, encoding: .utf8)
        let r = try fergc(["compile", path("pool.graph"), "--summary"])
        XCTAssertTrue(r.status == 0 || r.status == 1, r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Swift runtime failure"), r.stderr)
        let seeded = source.replacingOccurrences(of: "seed = 7", with: "seed = 9223372036854775809")
        try seeded.write(toFile: path("seed.graph"), atomically: true, encoding: .utf8)
        let t = try fergc(["train", path("seed.graph"), "--max-steps", "1", "--out", path("seedrun")])
        XCTAssertEqual(t.status, 0, t.stderr)
    }

    // #23 / R7: a graph whose parameters cannot fit the machine is refused before allocating
    // (50 parameters of 46340 x 46340: 430 G values).
    func testHugeGraphIsRefusedBeforeAllocating() throws {
        var text = "model g\ninput x: f32[N, 1, 48, 48]\ninput labels: i32[N]\nf = flatten(x)\nd0 = dense(f, units=46340)\n"
        for i in 1..<50 { text += "d\(i) = dense(d\(i - 1), units=46340)\n" }
        text += "logits = dense(d49, units=7)\nloss = softmax_cross_entropy(logits, labels)\noutput logits, loss\n"
        try text.write(toFile: path("big.graph"), atomically: true, encoding: .utf8)
        assertClearError(try fergc(["compile", path("big.graph"), "--summary"]), "more than this machine's")
    }

    // Under `ulimit -v` (or a container's memory limit) the machine's memory is not what the
    // process may take: a model that fits the machine but not the limit is refused with the
    // limit named, before the allocator would abort (99M parameters: 1.2 GB with the probe's
    // copy, against the 1 GB that 2 GB of address space leaves), and a layer whose activations
    // are what does not fit is refused by the probe's check.
    func testAddressSpaceLimitIsNamedNotAborted() throws {
        let dense = "model g\ninput x: f32[N, 1, 48, 48]\ninput labels: i32[N]\nf = flatten(x)\nd0 = dense(f, units=43000)\nlogits = dense(d0, units=7)\nloss = softmax_cross_entropy(logits, labels)\noutput logits, loss\n"
        let wide = "model g\ninput x: f32[N, 1, 48, 48]\ninput labels: i32[N]\nc = conv2d(x, filters=16384, kernel=3)\np = maxpool(c, size=48)\nf = flatten(p)\nlogits = dense(f, units=7)\nloss = softmax_cross_entropy(logits, labels)\noutput logits, loss\n"
        for (name, text, needle) in [("dense", dense, "parameter values need"), ("wide", wide, "pass 'probe'")] {
            try text.write(toFile: path("\(name).graph"), atomically: true, encoding: .utf8)
            let limited = try runProgram("/bin/sh", ["-c", "ulimit -v 2000000 && exec \"$0\" compile \"$1\" -o \"$2\"",
                                                     productsDirectory.appendingPathComponent("fergc").path,
                                                     path("\(name).graph"), path("\(name).plan")])
            assertClearError(limited, "address-space limit of 2048000000 bytes (ulimit -v)")
            XCTAssertTrue(limited.stderr.contains(needle), limited.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("\(name).plan")))
        }
        // Without the limit the same model compiles: the refusal was the limit's, not the model's.
        let r = try fergc(["compile", path("dense.graph"), "--no-probe", "--summary"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    // A sparse file states a size its disk blocks do not hold (`truncate -s 1T`): every reader
    // that takes a whole file refuses one larger than the process may allocate, naming the
    // file, where it once reserved the stated size and aborted (plans, weights, checkpoints).
    func testSparseFilesLargerThanMemoryAreRefusedNotAborted() throws {
        for name in ["big.plan", "big.npz"] {
            XCTAssertEqual(truncate(path(name), 0), -1)  // not there yet
            XCTAssertTrue(FileManager.default.createFile(atPath: path(name), contents: nil))
            XCTAssertEqual(truncate(path(name), 1 << 40), 0, "the scratch file system cannot hold a sparse 1 TiB file")
        }
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "-o", path("t.plan")]).status, 0)
        let needle = "the file has 1099511627776 bytes, more than this process may allocate"
        assertClearError(try fergc(["inspect", path("big.plan")]), needle)
        assertClearError(try fergc(["ensemble", path("t.plan"), path("big.plan"), "-o", path("e.plan")]), needle)
        assertClearError(try fergc(["compile", "Models/tiny.graph", "--weights", path("big.npz"), "-o", path("w.plan")]), needle)
        assertClearError(try fergc(["train", "Models/tiny.graph", "--init", path("big.npz"), "--out", path("run"), "--max-steps", "1"]), needle)
        try Data(Array("P5\n48 48\n255\n".utf8) + [UInt8](repeating: 128, count: 48 * 48)).write(to: URL(fileURLWithPath: path("face.pgm")))
        let p = try fergc(["predict", path("big.plan"), path("face.pgm"), "--detector", "none"])
        XCTAssertEqual(p.status, 65, p.stderr)  // predict's status for a plan it cannot use
        XCTAssertTrue(p.stderr.contains(needle), p.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("e.plan")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("w.plan")))
        // An .onnx file is read whole up to protobuf's 2 GiB: under `ulimit -v` a sparse one
        // within that is refused by the process's limit.
        XCTAssertTrue(FileManager.default.createFile(atPath: path("big.onnx"), contents: nil))
        XCTAssertEqual(truncate(path("big.onnx"), 2_000_000_000), 0)
        let limited = try runProgram("/bin/sh", ["-c", "ulimit -v 2000000 && exec \"$0\" import \"$1\" -o \"$2\"",
                                                 productsDirectory.appendingPathComponent("fergc").path,
                                                 path("big.onnx"), path("big.graph")])
        assertClearError(limited, "big.onnx: the file has 2000000000 bytes, more than this process may allocate")
        XCTAssertTrue(limited.stderr.contains("ulimit -v"), limited.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("big.graph")))
    }

    // An archive whose deflated member declares more than the process may allocate, within
    // deflate's 1032:1 of its compressed bytes (so the ratio check alone lets it through), is
    // refused from its central directory before the member's buffer is allocated: `--init`
    // reads weights without a model-sized bound, and under `ulimit -v` the allocation aborted.
    func testDeclaredSizesBeyondTheMemoryLimitAreRefusedBeforeInflating() throws {
        var rng = SystemRandomNumberGenerator()
        let noise = (0..<520_000).map { _ in Float(bitPattern: UInt32.random(in: 0x3000_0000...0x3F00_0000, using: &rng)) }
        var bytes = NumPyIO.writeNPZ([("c1.weight", NDArray(floats: noise, shape: [noise.count]))], compressed: true)
        XCTAssertGreaterThan(bytes.count, 2_000_000_000 / 1032)  // noise does not compress: 2 GB is within 1032:1
        let central = try XCTUnwrap((0..<(bytes.count - 4)).last { bytes[$0..<($0 + 4)] == [0x50, 0x4b, 0x01, 0x02] })
        let declared: UInt32 = 2_000_000_000
        for k in 0..<4 { bytes[central + 24 + k] = UInt8(truncatingIfNeeded: declared >> (8 * UInt32(k))) }
        try Data(bytes).write(to: URL(fileURLWithPath: path("bomb.npz")))
        let limited = try runProgram("/bin/sh", ["-c", "ulimit -v 2000000 && exec \"$0\" train Models/tiny.graph --init \"$1\" --out \"$2\" --max-steps 1",
                                                 productsDirectory.appendingPathComponent("fergc").path,
                                                 path("bomb.npz"), path("run")])
        assertClearError(limited, "declare 2000000000 bytes uncompressed, more than this process may allocate")
        XCTAssertTrue(limited.stderr.contains("ulimit -v"), limited.stderr)
    }

    // #14 / R8: a 10,000-layer graph compiles with the probe (its activations share an arena).
    func testDeepGraphCompilesWithTheProbe() throws {
        var text = "model g\ninput x: f32[N, 1, 8, 8]\ninput labels: i32[N]\na0 = relu(x)\n"
        for i in 1..<10_000 { text += "a\(i) = relu(a\(i - 1))\n" }
        text += "f = flatten(a9999)\nlogits = dense(f, units=7)\nloss = softmax_cross_entropy(logits, labels)\noutput logits, loss\n"
        try text.write(toFile: path("deep.graph"), atomically: true, encoding: .utf8)
        let r = try fergc(["compile", path("deep.graph"), "--summary"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    // #26 / U2, U3: errors without NSError dumps or doubled paths.
    func testErrorMessagesAreClean() throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: path("file")))
        let t = try fergc(["train", "Models/tiny.graph", "--out", path("file") + "/run", "--max-steps", "1"])
        assertClearError(t, "cannot create the run directory: Not a directory")
        XCTAssertFalse(t.stderr.contains("NSCocoaErrorDomain"), t.stderr)
        let c = try fergc(["compile", "Models/tiny.graph", "-o", path("missing") + "/x.plan"])
        assertClearError(c, "cannot create temp file")
        XCTAssertEqual(c.stderr.components(separatedBy: path("missing") + "/x.plan:").count, 2, c.stderr)
    }

    // #26 / W8, U5: PGM pixels above maxval and over-long header numbers are clear errors.
    func testPGMEdgeCases() throws {
        XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "-o", path("t.plan")]).status, 0)
        try Data(Array("P5\n48 48\n15\n".utf8) + [UInt8](repeating: 255, count: 2304)).write(to: URL(fileURLWithPath: path("a.pgm")))
        assertErrorRecord(try fergc(["predict", path("t.plan"), path("a.pgm"), "--format", "jsonl"]), "above the maximum value 15")
        try Data(Array("P5\n99999999999999999999 48\n255\n".utf8)).write(to: URL(fileURLWithPath: path("b.pgm")))
        assertErrorRecord(try fergc(["predict", path("t.plan"), path("b.pgm"), "--format", "jsonl"]), "the width has more than 7 digits")
    }

    // Tools/fuzz/commands.py (docs/reliability.md), a few mutants of each kind against the fergc
    // under test: its plan writer must rebuild the bases it makes byte for byte (a change of the
    // .plan layout shows here before the tool silently mutates nothing but checksums), its
    // .npz writer must give checkpoints fergc reads, and no mutant may crash or hang a command.
    func testCommandMutationToolRunsEachKindWithoutFailures() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw XCTSkip("no /usr/bin/python3") }
        let tool = repoRoot.appendingPathComponent("Tools/fuzz/commands.py").path
        for (kind, count) in [("plan", 40), ("run", 12), ("predictions", 40)] {
            let r = try runProgram("/usr/bin/python3", [tool, kind,
                                                        "--fergc", productsDirectory.appendingPathComponent("fergc").path,
                                                        "--count", "\(count)", "--seed", "37", "--work", path("mutants-\(kind)"),
                                                        "--timeout", "300"])
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertTrue(r.stdout.contains("commands.py: \(kind): \(count) mutants, 0 failures"), r.stdout + r.stderr)
        }
        // With --seconds it stops on time, not on a count: 5,000 mutants (each a process) do not
        // fit in two seconds, so a tool that ignored the budget would end on the count instead.
        let timed = try runProgram("/usr/bin/python3", [tool, "predictions",
                                                        "--fergc", productsDirectory.appendingPathComponent("fergc").path,
                                                        "--count", "5000", "--seconds", "2", "--seed", "38", "--work", path("mutants-timed"),
                                                        "--timeout", "300"])
        XCTAssertEqual(timed.status, 0, timed.stdout + timed.stderr)
        let ran = timed.stdout.split(separator: "\n").last { $0.hasPrefix("commands.py: predictions: ") }
            .flatMap { Int($0.split(separator: " ")[2]) }
        XCTAssertNotNil(ran, timed.stdout)
        XCTAssertTrue((1..<5000).contains(ran ?? 0), timed.stdout)
        // Its arguments are checked before anything runs.
        let bad = try runProgram("/usr/bin/python3", [tool, "plan", "--fergc", path("no-such-fergc")])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("no-such-fergc is not an executable fergc"), bad.stderr)
    }
}

/// Runs a program to completion in `cwd` (TestSupport's runProgram).
func runTool(_ executable: String, _ args: [String], cwd: URL = repoRoot) throws -> Result {
    try runProgram(executable, args, in: cwd)
}

/// The decompressed bytes of a gzip file (through the system's gzip).
func gunzip(_ url: URL) throws -> Data {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("gunzip-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: out) }
    p.arguments = ["-c", "gzip -dc '\(url.path)' > '\(out.path)'"]
    try p.run()
    p.waitUntilExit()
    return try Data(contentsOf: out)
}
