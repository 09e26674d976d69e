// libFuzzer target: the reader of a run's event log (Training's runSegments, the report's
// segments table). Built by Tools/fuzz/run.sh events as one module with Segments.swift alone
// (the TrainError it throws is declared below, as Trainer.swift declares it).
// The input is an events.jsonl: the bytes are read whole, and again through the file reader
// with a cap cut in the middle of the input (which must refuse it, naming the file).
// Invariants: no more segments than lines; positions in 0...2^40; the markdown table has one
// line per segment, each with the 8 cells of its header (a '|' or a line break inside a value
// must not add cells or rows); a segment compared with its own host reports no change, and
// with another CPU reports one.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct TrainError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

let fuzzDir = "/dev/shm/fergc-fuzz-events-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvents(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let clock: Double? = size % 3 == 0 ? nil : Double(size) / 7
    let segments = runSegments(eventLog: bytes, finalClock: clock)
    let lines = bytes.split(separator: 10).count
    if segments.count > lines { fail("\(segments.count) segments from \(lines) lines") }
    for s in segments where !(0...(1 << 40)).contains(s.epoch) || !(0...(1 << 40)).contains(s.batch) {
        fail("position \(s.epoch), \(s.batch)")
    }
    let md = segmentsMarkdown(segments, finalClock: clock ?? 0)
    if segments.isEmpty {
        if !md.isEmpty { fail("a table without segments") }
    } else {
        let rows = md.split(separator: "\n", omittingEmptySubsequences: false).filter { $0.hasPrefix("|") }
        if rows.count != segments.count + 2 { fail("\(rows.count) table lines for \(segments.count) segments:\n\(md)") }
        for row in rows where cells(row) != 8 { fail("a row with \(cells(row)) cells: \(row)") }
        if md.split(separator: "\n").contains(where: { !$0.isEmpty && !$0.hasPrefix("|") && !$0.hasPrefix("#") && !$0.hasPrefix("The processes") }) {
            fail("a line outside the table:\n\(md)")
        }
    }
    // A resume's host check: a segment's own host and compute say nothing; another host is
    // named (whatever the log held), never a crash.
    for seg in segments {
        if let note = hostChange(last: seg, host: seg.host, compute: seg.compute) {
            fail("a segment's own host reported as a change: \(note)")
        }
        if let h = seg.host, hostChange(last: seg, host: SegmentHost(name: h.name + "'", simd: "?"), compute: nil) == nil {
            fail("another CPU not reported")
        }
    }
    // The file reader: the same segments under a cap the file fits, a located refusal under one it does not.
    try? FileManager.default.createDirectory(atPath: fuzzDir, withIntermediateDirectories: true)
    let path = fuzzDir + "/events.jsonl"
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fail("cannot write \(path)") }
    do {
        let again = try runSegments(dir: fuzzDir, finalClock: clock, maxBytes: size)
        if again != segments { fail("the file reader read other segments") }
    } catch { fail("a file within its cap refused: \(error)") }
    if size > 0 {
        do {
            _ = try runSegments(dir: fuzzDir, finalClock: clock, maxBytes: size / 2)
            fail("a file over its cap read")
        } catch {
            if !"\(error)".contains(path) { fail("the refusal does not name the file: \(error)") }
        }
    }
    return 0
}

/// The cells of a markdown table row: '|' not escaped by a backslash separate them.
func cells(_ row: Substring) -> Int {
    var count = 0, escaped = false
    for c in row {
        if c == "|" && !escaped { count += 1 }
        escaped = c == "\\" && !escaped
    }
    return count - 1
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
