// End-to-end training runs of the built binary on the embedded sample: determinism, and exact
// resume after the process is killed mid-epoch.

import Foundation
import NumPyIO
import TestSupport
import XCTest

final class TrainingRunTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// The persistent tensors of a run's last checkpoint (weights, statistics, optimizer state).
    func tensors(_ dir: URL) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for (name, array) in try NumPyIO.readNPZ(path: dir.appendingPathComponent("checkpoint-last.npz").path) where name != "__meta__" {
            out[name] = array.data
        }
        return out
    }

    func train(_ out: URL, _ extra: [String] = []) throws -> Result {
        try fergc(["train", "Models/tiny.graph", "--epochs", "2", "--out", out.path] + extra)
    }

    func testSameSeedGivesBitwiseIdenticalWeights() throws {
        let a = scratch.appendingPathComponent("a"), b = scratch.appendingPathComponent("b")
        let ra = try train(a), rb = try train(b)
        XCTAssertEqual(ra.status, 0, ra.stderr)
        XCTAssertEqual(rb.status, 0, rb.stderr)
        let ta = try tensors(a), tb = try tensors(b)
        XCTAssertFalse(ta.isEmpty)
        XCTAssertEqual(ta, tb)
        XCTAssertTrue(ra.stdout.contains("report: "), ra.stdout)
        // A different seed gives different weights (the comparison can fail).
        let c = scratch.appendingPathComponent("c")
        XCTAssertEqual(try train(c, ["--seed", "8"]).status, 0)
        XCTAssertNotEqual(try tensors(c)["c1.weight"], ta["c1.weight"])
    }

    func testResumeAfterSIGKILLMidEpochMatchesUninterruptedRun() throws {
        try resumeAfterSIGKILL(model: "Models/tiny.graph")
    }

    /// The same with the whole recipe of issue 13: 44x44 crops from a reflect-padded face,
    /// flips, rotation, zoom, random erasing, label smoothing, SGD with Nesterov momentum and
    /// weight decay, cosine with warm-up, and the weight average (its state is in the
    /// checkpoint: the average under the tensors' names, the live weights as train.<name>).
    func testResumeWithTheFullRecipeAfterSIGKILLMatchesUninterruptedRun() throws {
        try resumeAfterSIGKILL(model: try fullRecipeModel(["label_smoothing = 0.1", "mixup = 0.4"]))
        let t = try tensors(scratch.appendingPathComponent("killed"))
        XCTAssertNotNil(t["train.c1.weight"])
        XCTAssertNotEqual(t["train.c1.weight"], t["c1.weight"], "the average differs from the live weights")
        XCTAssertNotNil(t["sgd.velocity.c1.weight"])
    }

    /// A finish (`finish = finish(...)`: the run's last epochs with their own rate, schedule and
    /// augmentation) after the full recipe: a run killed inside the finish resumes bitwise as the
    /// uninterrupted one; the log marks the finish's epoch and the report counts it; and the
    /// finish's augmentation is what ran (the same run whose finish keeps the run's augmentation
    /// ends with other weights).
    func testResumeInsideTheFinishAfterSIGKILLMatchesUninterruptedRun() throws {
        let light = try fullRecipeModel(["finish = finish(epochs=1, lr=0.005, augment=augment(hflip=true, crop=44, pad=0, pad_mode=reflect))"])
        let whole = scratch.appendingPathComponent("whole"), killed = scratch.appendingPathComponent("killed")
        let args = ["--epochs", "1", "--checkpoint-every", "10"]
        let uninterrupted = try fergc(["train", light, "--out", whole.path] + args)
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.stderr)

        // Killed at its first checkpoint inside the finish (the second epoch).
        let p = try trainUntilFirstCheckpoint(["train", light, "--out", killed.path] + args, out: killed, stderr: nil,
                                              marker: "\"epoch\":1,\"event\":\"checkpoint\"")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let before = try eventRecords(killed)
        XCTAssertEqual(before.filter { $0["event"] as? String == "epoch" }.count, 1, "killed inside the finish, after the main epoch")
        XCTAssertFalse(before.contains { $0["event"] as? String == "end" })
        let resumed = try fergc(["train", "--resume", killed.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming at epoch 2"), resumed.stdout)
        XCTAssertEqual(try tensors(killed), try tensors(whole))

        let epochs = try eventRecords(whole).filter { $0["event"] as? String == "epoch" }
        XCTAssertEqual(epochs.count, 2)
        XCTAssertNil(epochs[0]["stage"])
        XCTAssertEqual(epochs[1]["stage"] as? String, "finish")
        // The finish's last step: its cosine from 0.005 nearly at 0; the main one ended near 0 too.
        let lastRate = try XCTUnwrap(epochs[1]["lr"] as? Double)
        XCTAssertGreaterThan(lastRate, 0)
        XCTAssertLessThan(lastRate, 0.005 * 0.01)
        let report = try String(contentsOf: killed.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("Epochs run: 2 of 2 (1 and a finish of 1);"), report)
        XCTAssertTrue(report.contains("Finish: `finish(epochs=1, lr=0.005, schedule=cosine(min_factor=0.0, warmup_epochs=0.0), augment=augment(hflip=true, shift=0.0, crop=44, pad=0, pad_mode=reflect, rotate=0.0,"), report)

        let own = scratch.appendingPathComponent("own")
        let o = try fergc(["train", try fullRecipeModel(["finish = finish(epochs=1, lr=0.005)"]), "--out", own.path] + args)
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertNotEqual(try tensors(own)["c1.weight"], try tensors(whole)["c1.weight"])
    }

    /// The recipe changed from the command line (`--set`): the run trains with it (its weights
    /// differ from the model file's recipe), records the changed train block (the report shows
    /// it), and `--resume DIR` alone, without the settings, finishes it bitwise as the
    /// uninterrupted run; `--set` on a resume is refused, and a bad setting is a located error.
    func testSetChangesTheRecipeAndAKilledRunResumesBitwiseWithoutIt() throws {
        let set = ["--set", "augment=augment(hflip=true, crop=48, pad=2, pad_mode=reflect, rotate=10, erase=0.5)",
                   "--set", "optimizer=sgd(lr=0.02, momentum=0.9, nesterov=true, weight_decay=5e-4)",
                   "--set", "label_smoothing=0.1", "--set", "ema=0.99"]
        try resumeAfterSIGKILL(model: "Models/tiny.graph", extra: set)
        let killed = scratch.appendingPathComponent("killed")
        let report = try String(contentsOf: killed.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("  optimizer = sgd(lr=0.02, momentum=0.9, nesterov=true, weight_decay=0.0005)\n"), report)
        XCTAssertTrue(report.contains("rotate=10.0, scale=0.0, erase=0.5"), report)
        XCTAssertTrue(report.contains("  label_smoothing = 0.1\n  ema = 0.99\n"), report)
        XCTAssertNotNil(try tensors(killed)["sgd.velocity.c1.weight"], "the run trained with the optimizer given by --set")

        let plain = scratch.appendingPathComponent("plain")
        let p = try fergc(["train", "Models/tiny.graph", "--epochs", "2", "--out", plain.path, "--checkpoint-every", "10"])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertNotEqual(try tensors(plain)["c1.weight"], try tensors(killed)["c1.weight"])

        let again = try fergc(["train", "--resume", killed.path, "--set", "seed=3"])
        XCTAssertEqual(again.status, 2, again.stderr)
        XCTAssertTrue(again.stderr.contains("--set is for a new run"), again.stderr)
        let bad = try fergc(["train", "Models/tiny.graph", "--set", "augment=augment(hflip=true, crop=60)", "--out", scratch.appendingPathComponent("bad").path])
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--set:1:34: error: attribute 'crop': must be at most 48 (the face's side), got 60"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("bad").path), "nothing written for a refused run")
    }

    /// Models/tiny.graph on 44x44 crops with issue 13's recipe (SGD with Nesterov momentum and
    /// weight decay, cosine with warm-up, the weight average, the full augmentation) and the
    /// train lines `extra`, written to a file of its own in the scratch directory: its path.
    func fullRecipeModel(_ extra: [String]) throws -> String {
        let lines = ["optimizer = sgd(lr=0.02, momentum=0.9, nesterov=true, weight_decay=5e-4)",
                     "schedule = cosine(min_factor=0, warmup_epochs=0.5)", "ema = 0.99",
                     "augment = augment(hflip=true, crop=44, pad=3, pad_mode=reflect, rotate=10, scale=0.1, erase=0.5)"] + extra
        let source = try String(contentsOf: repoRoot.appendingPathComponent("Models/tiny.graph"), encoding: .utf8)
            .replacingOccurrences(of: "input x: f32[N, 1, 48, 48]", with: "input x: f32[N, 1, 44, 44]")
            .replacingOccurrences(of: "  optimizer = adam(lr=1e-3)\n", with: lines.map { "  \($0)\n" }.joined())
        XCTAssertTrue(source.contains("input x: f32[N, 1, 44, 44]") && extra.allSatisfy { source.contains($0) }, source)
        let file = scratch.appendingPathComponent("recipe-\(UUID().uuidString).graph")
        try source.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    /// `extra`: more options for the two new runs (not for the resume, which takes none).
    func resumeAfterSIGKILL(model: String, extra: [String] = []) throws {
        let whole = scratch.appendingPathComponent("whole"), killed = scratch.appendingPathComponent("killed")
        let uninterrupted = try fergc(["train", model, "--epochs", "2", "--out", whole.path, "--checkpoint-every", "10"] + extra)
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.stderr)

        // Kill it as soon as the first mid-epoch checkpoint is on disk.
        let p = try trainUntilFirstCheckpoint(["train", model, "--epochs", "2", "--out", killed.path, "--checkpoint-every", "10"] + extra,
                                              out: killed, stderr: nil)
        let log = killed.appendingPathComponent("events.jsonl")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let events = try String(contentsOf: log, encoding: .utf8)
        XCTAssertFalse(events.contains("\"event\":\"end\""), "the run was not interrupted")
        XCTAssertFalse(events.contains("\"event\":\"epoch\""), "the kill came after the first epoch ended")

        // The checkpoint records how long the epoch had run; the resumed epoch's time counts it.
        let before = try epochSecondsRecorded(killed)
        XCTAssertGreaterThan(before, 0)
        let resumed = try fergc(["train", "--resume", killed.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming at epoch 1"), resumed.stdout)
        XCTAssertEqual(try tensors(killed), try tensors(whole))
        let first = try XCTUnwrap(eventRecords(killed).first { $0["event"] as? String == "epoch" })
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(first["seconds"] as? Double), before)

        // The report lists both processes: the killed one, with the seconds its last checkpoint
        // kept, and the resumed one; their seconds add up to the run's wall time.
        let report = try String(contentsOf: killed.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("## Segments"), report)
        let rows = report.split(separator: "\n").filter { ($0.hasPrefix("| 1 | ") || $0.hasPrefix("| 2 | ")) && $0.contains("| epoch ") }
        XCTAssertEqual(rows.count, 2, report)
        XCTAssertTrue(rows.first?.contains("| epoch 1, step 1 |") == true && rows.first?.contains("no stop recorded (killed?)") == true, report)
        XCTAssertTrue(rows.last?.contains("| epoch 1, step 1 |") == false && rows.last?.contains("| finished |") == true, report)
        let seconds = rows.map { Double($0.split(separator: "|")[4].trimmingCharacters(in: .whitespaces)) ?? -1 }
        let total = try XCTUnwrap(report.firstMatch(of: /wall time ([0-9.]+) s/).map { Double($0.1)! })
        // (The table rounds to 0.1 s: a kill at the first checkpoint can keep less than 0.05 s.)
        XCTAssertTrue(seconds.allSatisfy { $0 >= 0 }, "\(seconds)")
        let resume = try XCTUnwrap(eventRecords(killed).first { $0["event"] as? String == "resume" })
        XCTAssertGreaterThan(try XCTUnwrap(resume["elapsed_seconds"] as? Double), 0, "the killed segment kept its checkpoint's time")
        XCTAssertEqual(seconds.reduce(0, +), total, accuracy: 0.16, report)  // three roundings to 0.1 s
    }

    /// Distillation with mixup: the teacher (a checkpoint of another run) is run once, its
    /// probabilities kept in the run directory, and the killed run resumes bitwise without it;
    /// a resume refuses other probabilities, or none.
    func testResumeWhileDistillingAfterSIGKILLMatchesUninterruptedRun() throws {
        let teacherRun = scratch.appendingPathComponent("teacher")
        let t = try fergc(["train", "Models/tiny.graph", "--epochs", "1", "--seed", "3", "--out", teacherRun.path])
        XCTAssertEqual(t.status, 0, t.stderr)
        let source = try String(contentsOf: repoRoot.appendingPathComponent("Models/tiny.graph"), encoding: .utf8)
            .replacingOccurrences(of: "  epochs = 2\n", with: "  epochs = 2\n  label_smoothing = 0.1\n  mixup = 0.4\n  distill = 0.7\n  distill_temperature = 2\n")
        let model = scratch.appendingPathComponent("distill.graph")
        try source.write(to: model, atomically: true, encoding: .utf8)
        let teacher = teacherRun.appendingPathComponent("checkpoint-last.npz").path
        try resumeAfterSIGKILL(model: model.path, extra: ["--teacher", teacher])
        let killed = scratch.appendingPathComponent("killed")
        let start = try XCTUnwrap(eventRecords(killed).first { $0["event"] as? String == "start" })
        XCTAssertEqual(start["teacher"] as? String, teacher)
        XCTAssertEqual(start["distill"] as? Double, 0.7)
        XCTAssertNotNil(start["blas_core"] as? String)
        let report = try String(contentsOf: killed.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("Distilled from: `\(teacher)`"), report)

        // Other probabilities in the run directory (one face's row changed), or none.
        let stored = killed.appendingPathComponent("teacher.npy")
        var array = try NumPyIO.readNPY([UInt8](Data(contentsOf: stored)))
        var values = array.floats
        values.swapAt(0, 1)
        array = NDArray(floats: values, shape: array.shape)
        try Data(NumPyIO.writeNPY(array)).write(to: stored)
        let changed = try fergc(["train", "--resume", killed.path, "--epochs", "3", "--force-resume"])
        XCTAssertEqual(changed.status, 1)
        XCTAssertTrue(changed.stderr.contains("are not the ones the run in \(killed.path) trained with"), changed.stderr)
        try FileManager.default.removeItem(at: stored)
        let missing = try fergc(["train", "--resume", killed.path, "--epochs", "3", "--force-resume"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("its run directory has no teacher.npy"), missing.stderr)
        // The teacher belongs to a new run, and to a model that distils.
        let again = try fergc(["train", "--resume", killed.path, "--teacher", teacher])
        XCTAssertEqual(again.status, 2)
        let plain = try fergc(["train", "Models/tiny.graph", "--out", scratch.appendingPathComponent("p").path, "--teacher", teacher])
        XCTAssertEqual(plain.status, 2)
        XCTAssertTrue(plain.stderr.contains("does not distil"), plain.stderr)
        let none = try fergc(["train", model.path, "--out", scratch.appendingPathComponent("n").path])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("give one with --teacher"), none.stderr)
    }

    /// SIGTERM (or Ctrl-C's SIGINT) stops the run after the step it is in, with a checkpoint
    /// at that step (not the last periodic one), the report written and status 128 + the
    /// signal; `--resume` then finishes bitwise the uninterrupted run.
    func testSIGTERMStopsAfterTheStepWithACheckpointAndResumesBitwise() throws {
        let whole = scratch.appendingPathComponent("whole"), stopped = scratch.appendingPathComponent("stopped")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--epochs", "2", "--out", whole.path]).status, 0)

        let err = try stopWithSIGTERM(["train", "Models/tiny.graph", "--epochs", "2", "--out", stopped.path,
                                       "--checkpoint-every", "7"], out: stopped)
        XCTAssertTrue(err.contains("stopped by SIGTERM at epoch 1, step "), err)
        XCTAssertTrue(err.contains("fergc train --resume \(stopped.path)"), err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: stopped.appendingPathComponent("report.md").path))

        // The checkpoint is the stop's, wherever it fell between the periodic ones.
        let events = try eventRecords(stopped)
        let stop = try XCTUnwrap(events.last { $0["event"] as? String == "stopped" })
        XCTAssertEqual(stop["reason"] as? String, "SIGTERM")
        let iteration = try XCTUnwrap(stop["iteration"] as? Int)
        XCTAssertGreaterThanOrEqual(iteration, 7)
        XCTAssertEqual(try iterationRecorded(stopped), iteration)
        XCTAssertFalse(events.contains { $0["event"] as? String == "end" })

        let resumed = try fergc(["train", "--resume", stopped.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try tensors(stopped), try tensors(whole))
        let report = try String(contentsOf: stopped.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("2 segments") && report.contains("| stopped (SIGTERM) |")
                      && report.contains("| finished |"), report)
    }

    /// `--stop-after TIME` stops the run by itself once the process has run TIME, as SIGTERM
    /// does: after the step, with a checkpoint at that step, the report written (its segment
    /// says why) and exit status 75; `--resume` then finishes it bitwise as the uninterrupted
    /// run. (0.01 s has always passed by the first step: the data and the plan load first.)
    /// Times it cannot read are usage errors; the forms it documents are accepted.
    func testStopAfterStopsWithACheckpointAndStatus75ThenResumesBitwise() throws {
        let whole = scratch.appendingPathComponent("whole"), stopped = scratch.appendingPathComponent("stopped")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--epochs", "2", "--out", whole.path]).status, 0)
        let r = try fergc(["train", "Models/tiny.graph", "--epochs", "2", "--out", stopped.path, "--stop-after", "0.01"])
        XCTAssertEqual(r.status, 75, r.stderr)
        XCTAssertTrue(r.stderr.contains("stopped by --stop-after 0.01s at epoch 1, step 0 of "), r.stderr)
        XCTAssertTrue(r.stderr.contains("fergc train --resume \(stopped.path)"), r.stderr)
        let stop = try XCTUnwrap(eventRecords(stopped).last { $0["event"] as? String == "stopped" })
        XCTAssertEqual(stop["reason"] as? String, "--stop-after 0.01s")
        XCTAssertEqual(try iterationRecorded(stopped), 0)
        let report = try String(contentsOf: stopped.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| stopped (--stop-after 0.01s) |"), report)

        let resumed = try fergc(["train", "--resume", stopped.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try tensors(stopped), try tensors(whole))

        for bad in ["0", "-5", "5x", "1h30", "1s5s", "30m1h", "m", "", "1e3", "0x10", "nan", "inf", "9999999999"] {
            let u = try fergc(["train", "Models/tiny.graph", "--out", scratch.appendingPathComponent("u").path, "--stop-after", bad])
            XCTAssertEqual(u.status, 2, "\(bad): \(u.stderr)")
            XCTAssertTrue(u.stderr.contains("--stop-after expects a time like 5400 (seconds), 90m, 1h30m or 2h"), "\(bad): \(u.stderr)")
        }
        for (i, good) in ["5400", "90m", "1h30m", "1.5h", "2h45m10s", "45s"].enumerated() {
            let g = try fergc(["train", "Models/tiny.graph", "--out", scratch.appendingPathComponent("g\(i)").path, "--max-steps", "1", "--stop-after", good])
            XCTAssertEqual(g.status, 0, "\(good): \(g.stderr)")
        }
    }

    /// `fergc reproduce` takes the signals too: SIGTERM in a row's training stops it after the
    /// step with a checkpoint, the table is written, the status is 143 and the message gives the
    /// same command, which resumes the row and ends it bitwise as an uninterrupted reproduce.
    func testSIGTERMStopsReproduceInARowAndTheSameCommandContinuesIt() throws {
        let manifest = scratch.appendingPathComponent("m.json")
        try """
        {"title": "One row", "rows": [{"name": "a", "paper_row": "Row A", "model": "Models/tiny.graph"}], "differences": []}
        """.write(to: manifest, atomically: true, encoding: .utf8)
        func args(_ tag: String) -> [String] {
            ["reproduce", "--manifest", manifest.path, "--out", scratch.appendingPathComponent(tag + "-out").path,
             "--runs", scratch.appendingPathComponent(tag + "-runs").path, "--epochs", "3"]
        }
        let whole = try fergc(args("whole"))
        XCTAssertEqual(whole.status, 0, whole.stderr)

        let run = scratch.appendingPathComponent("stopped-runs/a")
        let err = try stopWithSIGTERM(args("stopped"), out: run)
        XCTAssertTrue(err.contains("stopped by SIGTERM in row a at epoch "), err)
        XCTAssertTrue(err.contains("continue with:\n  fergc reproduce " + args("stopped").dropFirst().joined(separator: " ")), err)
        let stop = try XCTUnwrap(eventRecords(run).last { $0["event"] as? String == "stopped" })
        XCTAssertEqual(stop["reason"] as? String, "SIGTERM")
        XCTAssertEqual(try iterationRecorded(run), try XCTUnwrap(stop["iteration"] as? Int))
        let out = scratch.appendingPathComponent("stopped-out")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("rows/a.json").path), "the row is not done")
        let table = try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(table.contains("not run"), table)

        let again = try fergc(args("stopped"))
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("row a: resuming"), again.stdout)
        XCTAssertEqual(try tensors(run), try tensors(scratch.appendingPathComponent("whole-runs/a")))
    }

    /// Runs `fergc args` (training into `out`) until its first checkpoint, sends SIGTERM, checks
    /// that it exits with 128 + SIGTERM and returns its standard error.
    func stopWithSIGTERM(_ args: [String], out: URL) throws -> String {
        let errFile = scratch.appendingPathComponent("stderr-\(UUID().uuidString).txt")
        let p = try trainUntilFirstCheckpoint(args, out: out, stderr: errFile)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM)
        return try String(contentsOf: errFile, encoding: .utf8)
    }

    /// Starts `fergc args` (a training run into `out`, its standard error into `stderr` or
    /// nowhere) and returns it, still running, once its first mid-epoch checkpoint is on disk.
    /// `marker`: the text of the event log to wait for (by default any checkpoint's; the log's
    /// keys are sorted, so `"epoch":1,"event":"checkpoint"` is a checkpoint in the second epoch).
    func trainUntilFirstCheckpoint(_ args: [String], out: URL, stderr: URL?, marker: String = "\"event\":\"checkpoint\"") throws -> Process {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("fergc")
        p.arguments = args
        p.currentDirectoryURL = repoRoot
        p.standardOutput = FileHandle.nullDevice
        if let stderr {
            _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
            p.standardError = try FileHandle(forWritingTo: stderr)
        } else {
            p.standardError = FileHandle.nullDevice
        }
        try p.run()
        let log = out.appendingPathComponent("events.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, p.isRunning {
            if let text = try? String(contentsOf: log, encoding: .utf8), text.contains(marker) { break }
            usleep(2_000)
        }
        XCTAssertTrue(p.isRunning, "the run ended before its first checkpoint was seen")
        return p
    }

    /// The `iteration` of a run's last checkpoint.
    func iterationRecorded(_ dir: URL) throws -> Int {
        let meta = try XCTUnwrap(NumPyIO.readNPZ(path: dir.appendingPathComponent("checkpoint-last.npz").path)
            .first { $0.name == "__meta__" }?.array.data)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(meta)) as? [String: Any])
        return try XCTUnwrap(json["iteration"] as? Int)
    }

    /// The `partialSeconds` of a run's last checkpoint.
    func epochSecondsRecorded(_ dir: URL) throws -> Double {
        let meta = try XCTUnwrap(NumPyIO.readNPZ(path: dir.appendingPathComponent("checkpoint-last.npz").path)
            .first { $0.name == "__meta__" }?.array.data)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(meta)) as? [String: Any])
        return try XCTUnwrap(json["partialSeconds"] as? Double)
    }

    func eventRecords(_ dir: URL) throws -> [[String: Any]] {
        try String(contentsOf: dir.appendingPathComponent("events.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// `--train-on Training,PublicTest` (issue 13's final retraining): the faces of both splits,
    /// nothing validated, the splits recorded so that `--resume DIR` alone continues on them and
    /// a resume on other splits is refused; unknown or repeated names are usage errors.
    func testTrainOnTrainingAndPublicTestValidatesNothingAndResumesOnTheSameSplits() throws {
        let plain = try fergc(["train", "Models/tiny.graph", "--epochs", "1", "--max-steps", "1", "--out", scratch.appendingPathComponent("plain").path])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let counts = try XCTUnwrap(plain.stderr.firstMatch(of: /loaded (\d+) training and (\d+) validation faces/), plain.stderr)
        let (training, publicTest) = (Int(counts.1)!, Int(counts.2)!)
        XCTAssertGreaterThan(publicTest, 0)

        let dir = scratch.appendingPathComponent("all")
        let first = try fergc(["train", "Models/tiny.graph", "--epochs", "1", "--train-on", "Training,PublicTest", "--max-steps", "3",
                               "--checkpoint-every", "1", "--out", dir.path])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("loaded \(training + publicTest) training (Training + PublicTest) and 0 validation faces"), first.stderr)
        XCTAssertTrue(first.stderr.contains("no validation split"), first.stderr)
        let resumed = try fergc(["train", "--resume", dir.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("loaded \(training + publicTest) training (Training + PublicTest)"), resumed.stderr)
        let events = try String(contentsOf: dir.appendingPathComponent("events.jsonl"), encoding: .utf8)
        XCTAssertTrue(events.contains("\"event\":\"resume\"") && events.contains("\"train_images\":\(training + publicTest)"), events)
        XCTAssertTrue(events.contains("\"val_images\":0") && !events.contains("\"val_accuracy\""), events)
        XCTAssertTrue(events.contains("\"event\":\"end\""), events)
        let report = try String(contentsOf: dir.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("Trained on: Training + PublicTest (no validation split"), report)
        XCTAssertFalse(report.contains("Best validation accuracy"), report)

        // The recorded splits are part of the data a resume must match.
        let other = try fergc(["train", "--resume", dir.path, "--train-on", "Training"])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("--force-resume"), other.stderr)
        for (bad, message) in [("Training,Nope", "unknown split 'Nope'"), ("Training,Training", "listed twice"), ("", "unknown split ''")] {
            let r = try fergc(["train", "Models/tiny.graph", "--train-on", bad, "--out", scratch.appendingPathComponent("bad").path])
            XCTAssertNotEqual(r.status, 0, bad)
            XCTAssertTrue(r.stderr.contains(message), bad + ": " + r.stderr)
        }
    }

    func testResumeRefusesAnotherModelAndExistingRunDirectory() throws {
        let dir = scratch.appendingPathComponent("run")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--epochs", "1", "--out", dir.path]).status, 0)
        let again = try fergc(["train", "Models/tiny.graph", "--epochs", "1", "--out", dir.path])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)
        let other = try fergc(["train", "Models/small.graph", "--resume", dir.path])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("another model"), other.stderr)
    }

    func testCorruptCheckpointIsRejected() throws {
        let dir = scratch.appendingPathComponent("run")
        XCTAssertEqual(try fergc(["train", "Models/tiny.graph", "--epochs", "1", "--out", dir.path]).status, 0)
        let path = dir.appendingPathComponent("checkpoint-last.npz")
        var bytes = try Data(contentsOf: path)
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: path)
        let r = try fergc(["train", "--resume", dir.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("checkpoint"), r.stderr)
    }

    func testNonFiniteLossStopsTheRunAndNamesTheStep() throws {
        // tiny with an absurd learning rate: the first update throws the weights to ~1e30 and
        // the next forward pass overflows.
        let source = try String(contentsOf: repoRoot.appendingPathComponent("Models/tiny.graph"), encoding: .utf8)
            .replacingOccurrences(of: "optimizer = adam(lr=1e-3)", with: "optimizer = sgd(lr=1e30)")
        XCTAssertTrue(source.contains("sgd(lr=1e30)"))
        let model = scratch.appendingPathComponent("diverge.graph")
        try source.write(to: model, atomically: true, encoding: .utf8)
        let dir = scratch.appendingPathComponent("run")
        let r = try fergc(["train", model.path, "--epochs", "1", "--out", dir.path, "--checkpoint-every", "1"])
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stderr.contains("non-finite value at iteration"), r.stderr)
        // The culprit: a parameter the update made non-finite (named first), else the step.
        XCTAssertTrue(r.stderr.contains("computed by step") || r.stderr.contains("the loss") || r.stderr.contains("the tensor '"), r.stderr)
        XCTAssertTrue(r.stderr.contains("last checkpoint written is"), r.stderr)
        let log = try String(contentsOf: dir.appendingPathComponent("events.jsonl"), encoding: .utf8)
        XCTAssertTrue(log.contains("\"event\":\"non_finite\""), log)
        // The last good checkpoint is intact and readable.
        XCTAssertFalse(try tensors(dir).isEmpty)
    }
}
