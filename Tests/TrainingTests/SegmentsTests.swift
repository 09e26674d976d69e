// The segments of a run (one per process that trained it), read back from its event log for
// the report: the seconds each kept, how each ended, what it ran on.

import Foundation
import Frontend
import Runtime
import XCTest
@testable import Training

final class SegmentsTests: XCTestCase {
    func log(_ lines: [String]) -> [UInt8] { Array((lines.joined(separator: "\n") + "\n").utf8) }

    /// Killed, then stopped with SIGTERM, then finished: three segments whose seconds add up to
    /// the final clock; a log written before the start event carried the clock counts from 0.
    func testKilledStoppedAndFinishedSegmentsAddUpToTheFinalClock() throws {
        let s = runSegments(eventLog: log([
            #"{"event":"start","epoch":0,"batch":0,"time":"2026-12-02T00:00:27Z"}"#,
            #"{"event":"checkpoint","epoch":0,"batch":100,"elapsed_seconds":14.5,"time":"2026-12-02T00:00:41Z"}"#,
            #"{"event":"epoch","epoch":1,"elapsed_seconds":70.0,"time":"2026-12-02T00:01:37Z"}"#,
            #"{"event":"checkpoint","epoch":1,"batch":100,"elapsed_seconds":84.25,"time":"2026-12-02T00:01:51Z"}"#,
            #"{"event":"resume","epoch":1,"batch":100,"elapsed_seconds":84.25,"cpu":"AMD EPYC","cores":2,"compute":"compute: bf16 on AVX512_BF16 (the products of ...)","time":"2026-12-03T09:00:00Z"}"#,
            #"{"event":"stopped","reason":"SIGTERM","epoch":1,"batch":300,"elapsed_seconds":120.0,"time":"2026-12-03T09:00:40Z"}"#,
            #"{"event":"resume","epoch":1,"batch":300,"elapsed_seconds":119.5,"cpu":"AMD EPYC","cores":2,"blas_core":"Haswell","time":"2026-12-03T10:00:00Z"}"#,
            #"{"event":"end","epochs":2,"elapsed_seconds":200.0,"time":"2026-12-03T10:01:30Z"}"#,
        ]), finalClock: 200)
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s.map(\.seconds), [84.25, 35.25, 80.5])
        XCTAssertEqual(s.compactMap(\.seconds).reduce(0, +), 200, accuracy: 1e-9)
        XCTAssertTrue(s[0].ending.hasPrefix("no stop recorded (killed?)"), s[0].ending)
        XCTAssertEqual(s[1].ending, "stopped (SIGTERM)")
        XCTAssertEqual(s[2].ending, "finished")
        XCTAssertEqual(s.map(\.started), ["2026-12-02T00:00:27Z", "2026-12-03T09:00:00Z", "2026-12-03T10:00:00Z"])
        XCTAssertEqual(s.map(\.lastEvent), ["2026-12-02T00:01:51Z", "2026-12-03T09:00:40Z", "2026-12-03T10:01:30Z"])
        XCTAssertEqual(s[1].epoch, 1)
        XCTAssertEqual(s[1].batch, 100)
        XCTAssertEqual(s[1].cpu, "AMD EPYC, 2 cores")
        // OpenBLAS's kernels, where the start event recorded them (they round differently).
        XCTAssertEqual(s[2].cpu, "AMD EPYC, 2 cores, OpenBLAS Haswell")
        XCTAssertNil(s[0].cpu)

        let md = segmentsMarkdown(s, finalClock: 200)
        XCTAssertTrue(md.contains("3 segments, 200.0 s of training"), md)
        XCTAssertTrue(md.contains("| 2 | 2026-12-03T09:00:00Z | 2026-12-03T09:00:40Z | epoch 2, step 101 | 35.2 | stopped (SIGTERM) | AMD EPYC, 2 cores | bf16 on AVX512_BF16 |"), md)
        XCTAssertTrue(md.contains("| 1 | 2026-12-02T00:00:27Z | 2026-12-02T00:01:51Z | epoch 1, step 1 | 84.2 |"), md)
    }

    /// A resume logged before the clock was recorded leaves both neighbours' seconds unknown
    /// ("-"), not guessed; lines that are not JSON objects (cut, garbage, nested 100,000 deep)
    /// and events before any start are skipped; a log with no start has no segments.
    func testUnknownClocksGarbageLinesAndNoStart() {
        let s = runSegments(eventLog: log([
            #"{"event":"checkpoint","epoch":0,"batch":5}"#,
            #"{"event":"start","epoch":0,"batch":0,"time":"a"}"#,
            #"{"event":"epoch","ep"#,
            "not json at all",
            "[1, 2]",
            String(repeating: "[", count: 100_000),              // nesting no parser should recurse through
            String(repeating: #"{"a":"#, count: 50_000),
            #"{"event":"resume","epoch":0,"batch":7,"time":"b"}"#,
            #"{"event":"non_finite","epoch":1,"batch":9,"time":"c"}"#,
        ]), finalClock: 9)
        XCTAssertEqual(s.count, 2)
        XCTAssertNil(s[0].seconds)
        XCTAssertNil(s[1].seconds)
        XCTAssertEqual(s[1].ending, "stopped (a non-finite loss)")
        XCTAssertEqual(s[1].lastEvent, "c")
        XCTAssertTrue(segmentsMarkdown(s, finalClock: 9).contains("| 1 | a | a | epoch 1, step 1 | - |"))
        XCTAssertEqual(runSegments(eventLog: log([#"{"event":"epoch","epoch":1}"#]), finalClock: 1), [])
        XCTAssertEqual(runSegments(eventLog: [], finalClock: nil), [])
        XCTAssertEqual(segmentsMarkdown([], finalClock: 0), "")
        // The last segment of a run still going (or killed) has no stop, and the checkpoint's clock.
        let running = runSegments(eventLog: log([#"{"event":"start","epoch":0,"batch":0,"time":"t"}"#]), finalClock: 12)
        XCTAssertEqual(running.first?.seconds, 12)
        XCTAssertEqual(running.first?.ending, "no stop recorded (running, or killed)")
    }

    /// Positions out of range (an edited log) are read as 0, not added to and trapped on.
    func testOutOfRangePositionsAreZero() {
        let s = runSegments(eventLog: log([#"{"event":"start","epoch":9223372036854775807,"batch":-3,"time":"t"}"#]), finalClock: 1)
        XCTAssertEqual(s.first?.epoch, 0)
        XCTAssertEqual(s.first?.batch, 0)
        XCTAssertTrue(segmentsMarkdown(s, finalClock: 1).contains("| epoch 1, step 1 |"))
    }

    /// A '|' inside a cell is escaped, so a CPU's name cannot break the table.
    func testPipesInCellsAreEscaped() {
        let s = runSegments(eventLog: log([#"{"event":"start","epoch":0,"batch":0,"time":"t","cpu":"A|B","cores":4}"#]), finalClock: 1)
        XCTAssertTrue(segmentsMarkdown(s, finalClock: 1).contains(#"| A\|B, 4 cores |"#))
    }

    /// Found while writing the events fuzz target's invariants: a line break inside a value (an edited log) ended the
    /// table's row, and a value ending in a backslash escaped the separator after it.
    func testLineBreaksAndBackslashesStayInTheirCell() {
        let s = runSegments(eventLog: log([#"{"event":"start","epoch":0,"batch":0,"time":"a\nb\rc","cpu":"x\\","cores":2}"#,
                                           #"{"event":"stopped","time":"d\u2028e","reason":"r|\\"}"#]), finalClock: 1)
        let rows = segmentsMarkdown(s, finalClock: 1).split(separator: "\n").filter { $0.hasPrefix("|") }
        XCTAssertEqual(rows.count, 3)  // header, rule, the segment
        XCTAssertEqual(rows.last, #"| 1 | a b c | d e | epoch 1, step 1 | 1.0 | stopped (r\|\\) | x\\, 2 cores | - |"#)
    }

    /// The log is read up to a bound: over it, a located error, not an allocation the size of
    /// the file; no log at all is no segments.
    func testEventLogOverTheBoundIsRefusedAndNoLogIsNoSegments() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-segments-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(try runSegments(dir: dir, finalClock: 1), [])
        let line = #"{"event":"start","epoch":0,"batch":0,"time":"t"}"# + "\n"
        try line.write(toFile: dir + "/events.jsonl", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runSegments(dir: dir, finalClock: 1, maxBytes: line.utf8.count).count, 1)
        XCTAssertThrowsError(try runSegments(dir: dir, finalClock: 1, maxBytes: line.utf8.count - 1)) { error in
            XCTAssertTrue("\(error)".contains(dir + "/events.jsonl: the event log is over"), "\(error)")
        }
    }

    /// A resume on another host: what differs is said (compute, CPU, OpenBLAS's kernels, the
    /// SIMD level), fields one side did not record are not compared, and the same host is
    /// silent.
    func testHostChangeNamesWhatDiffersAndOnlyThat() {
        let s = runSegments(eventLog: log([
            #"{"event":"start","epoch":0,"batch":0,"time":"t0","cpu":"AMD EPYC","cores":2,"blas_core":"Haswell","simd":"AVX-512F","compute":"compute: bf16 on AVX512_BF16 (the products of ...)"}"#,
            #"{"event":"stopped","reason":"SIGTERM","time":"t1"}"#,
        ]), finalClock: 1)
        XCTAssertEqual(s.first?.cpu, "AMD EPYC, 2 cores, OpenBLAS Haswell, SIMD AVX-512F")
        let last = s[0]
        let same = SegmentHost(name: "AMD EPYC", cores: 2, blasCore: "Haswell", simd: "AVX-512F")
        XCTAssertNil(hostChange(last: last, host: same, compute: "compute: bf16 on AVX512_BF16 (other words)"))
        // Session 41's host: the same name, no AVX-512, so the recipe's bf16 ran in f32.
        let avx2 = SegmentHost(name: "AMD EPYC", cores: 2, blasCore: "Haswell", simd: "AVX2+FMA")
        let note = hostChange(last: last, host: avx2, compute: "compute: f32 (the train block asks for bf16; ...)")
        XCTAssertNotNil(note)
        XCTAssertTrue(note?.contains("from t0") ?? false, note ?? "")
        XCTAssertTrue(note?.contains("compute bf16 on AVX512_BF16, now f32") ?? false, note ?? "")
        XCTAssertTrue(note?.contains("SIMD AVX-512F, now AVX2+FMA") ?? false, note ?? "")
        XCTAssertFalse(note?.contains("CPU AMD") ?? true, note ?? "")
        XCTAssertTrue(note?.contains("no longer bitwise") ?? false, note ?? "")
        let other = SegmentHost(name: "Intel Xeon", cores: 4, blasCore: "SkylakeX", simd: "AVX-512F")
        let moved = hostChange(last: last, host: other, compute: "compute: bf16 on AVX512_BF16") ?? ""
        for words in ["CPU AMD EPYC, now Intel Xeon", "cores 2, now 4", "OpenBLAS kernels Haswell, now SkylakeX"] {
            XCTAssertTrue(moved.contains(words), moved)
        }
        XCTAssertFalse(moved.contains("compute bf16"), moved)  // the same compute
        // A log from before the SIMD level was recorded: the level is not compared, the rest is.
        let old = runSegments(eventLog: log([#"{"event":"start","epoch":0,"batch":0,"time":"t","cpu":"AMD EPYC","cores":2,"blas_core":"Haswell"}"#]),
                              finalClock: 1)[0]
        XCTAssertNil(hostChange(last: old, host: avx2, compute: "compute: f32"))
        // Nothing recorded at all: nothing to compare.
        let bare = runSegments(eventLog: log([#"{"event":"start","epoch":0,"batch":0,"time":"t"}"#]), finalClock: 1)[0]
        XCTAssertNil(hostChange(last: bare, host: other, compute: "compute: f32"))
    }

    /// The trainer's own record: a run resumed where it ran says nothing; resumed with lower SIMD
    /// kernels (as on a CPU without AVX-512, or without AVX2) it says which, and the new
    /// segment's start event records the level for the report.
    func testTrainerSaysWhenAResumeRunsOnOtherKernels() throws {
        let model = try Frontend.compile(path: "\(repoRoot)/Models/tiny.graph")
        let data = try loadFER2013(path: "\(repoRoot)/Data/fer2013-sample.csv.gz")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fergc-host-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first = TrainOptions(epochs: 1, batchSize: 16, seed: 7, outDir: dir)
        first.maxSteps = 2
        let t = try Trainer(model: model, data: data, options: first)
        XCTAssertNil(t.hostChangeNote(), "not resuming")
        _ = try t.run { _ in }
        var again = first
        again.resume = true
        XCTAssertNil(try Trainer(model: model, data: data, options: again).hostChangeNote(), "the same host")
        let native = smallSgemmName
        guard smallSgemmLevel > 0 else { return }  // plain C already: no lower level to resume on
        try withKernelLevel(0) {
            let r = try Trainer(model: model, data: data, options: again)
            let note = r.hostChangeNote() ?? ""
            XCTAssertTrue(note.contains("SIMD \(native), now plain C"), note)
            _ = try r.run { _ in }
        }
        let segments = try runSegments(dir: dir, finalClock: nil)
        XCTAssertEqual(segments.count, 2)
        XCTAssertEqual(segments.map { $0.host?.simd }, [native, "plain C"])
    }

    func testCPUModelNameIsReadWhereLinuxHasOne() {
        guard FileManager.default.fileExists(atPath: "/proc/cpuinfo") else { return }
        // Some virtual CPUs (and non-x86 kernels) have no "model name" line: then nil, never "".
        if let name = cpuModelName() { XCTAssertFalse(name.isEmpty) }
        XCTAssertEqual(briefCompute("compute: bf16 on AMX (the products of the convolutions)"), "bf16 on AMX")
        XCTAssertEqual(briefCompute("compute: f32"), "f32")
    }
}
