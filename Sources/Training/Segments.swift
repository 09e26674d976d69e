// The segments of a training run: one per process that trained it (the first `fergc train`,
// then each `--resume`), read back from the run's event log, so that a run's wall time summed
// over resumed segments, and where each ran, are in its report rather than in someone's notes.

import Foundation

/// One process's share of a run.
public struct RunSegment: Equatable, Sendable {
    /// When the process started or resumed the run, and its last event (UTC, ISO 8601).
    public var started: String
    public var lastEvent: String
    /// Where it took the run over: the next batch to train (both 0-based).
    public var epoch: Int, batch: Int
    /// The trainer's clock when it took over (nil in logs written before it was recorded).
    public var clockAtStart: Double?
    /// The trainer's clock where the run's next segment took over (what this one kept: work
    /// after its last checkpoint that a kill lost is redone, and counted, by the next), or
    /// where the run's last checkpoint left it for the last segment. Nil when unknown.
    public var clockAtEnd: Double?
    /// How it ended, in words.
    public var ending: String
    /// The host (the CPU, its cores, OpenBLAS's kernels and fergc's SIMD level, each when
    /// recorded) and the compute it trained with, as its start event recorded them.
    public var host: SegmentHost?
    public var compute: String?
    /// For the first segment of a run started with `--init`: the weights it started from, in
    /// words, as its start event recorded them (nil otherwise).
    public var initialWeights: String?

    /// The host as the report prints it ("AMD EPYC, 2 cores, OpenBLAS Haswell, SIMD AVX2+FMA").
    public var cpu: String? { host?.description }

    /// The training seconds this segment counts for (nil when its log does not say).
    public var seconds: Double? {
        guard let a = clockAtStart, let b = clockAtEnd else { return nil }
        return b - a
    }
}

/// What a segment ran on. Fields a log did not record are nil (logs before session 41 have no
/// SIMD level; older ones no OpenBLAS kernels).
public struct SegmentHost: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var cores: Int?
    public var blasCore: String?
    public var simd: String?

    public init(name: String, cores: Int? = nil, blasCore: String? = nil, simd: String? = nil) {
        self.name = name
        self.cores = cores
        self.blasCore = blasCore
        self.simd = simd
    }

    /// The host a start or resume event recorded (nil without the CPU's name).
    init?(event object: [String: Any]) {
        guard let name = object["cpu"] as? String else { return nil }
        self.init(name: name, cores: object["cores"] as? Int, blasCore: object["blas_core"] as? String,
                  simd: object["simd"] as? String)
    }

    public var description: String {
        var s = name
        if let cores { s += ", \(cores) cores" }
        if let blasCore { s += ", OpenBLAS \(blasCore)" }
        if let simd { s += ", SIMD \(simd)" }
        return s
    }

    /// The fields both recorded that differ, in words ("SIMD AVX-512F, now AVX2+FMA").
    func differences(to now: SegmentHost) -> [String] {
        var out: [String] = []
        func compare<T: Equatable & CustomStringConvertible>(_ what: String, _ a: T?, _ b: T?) {
            if let a, let b, a != b { out.append("\(what) \(a), now \(b)") }
        }
        compare("CPU", name, now.name)
        compare("cores", cores, now.cores)
        compare("OpenBLAS kernels", blasCore, now.blasCore)
        compare("SIMD", simd, now.simd)
        return out
    }
}

/// An event log larger than this is not read for the report (a run's log is a few hundred
/// bytes per checkpoint: 64 MB is hundreds of thousands of them).
public let maxEventLogBytes = 64 << 20

/// The segments of a run from the bytes of its `events.jsonl`. `finalClock` is the trainer's
/// clock in the run's last checkpoint (the last segment's end). Lines that are not JSON
/// objects (a line cut by a full disk, say) are skipped.
public func runSegments(eventLog: [UInt8], finalClock: Double?) -> [RunSegment] {
    var segments: [RunSegment] = []
    var ended = false
    for line in eventLog.split(separator: 10) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
              let event = object["event"] as? String else { continue }
        let time = object["time"] as? String ?? "?"
        let clock = (object["elapsed_seconds"] as? NSNumber)?.doubleValue
        if event == "start" || event == "resume" {
            if var last = segments.popLast() {
                if !ended { last.ending = "no stop recorded (killed?); the next segment resumed from its last checkpoint" }
                last.clockAtEnd = clock
                segments.append(last)
            }
            // Positions from a log someone edited stay printable (the report adds 1 to them).
            func position(_ key: String) -> Int { (object[key] as? Int).flatMap { (0...(1 << 40)).contains($0) ? $0 : nil } ?? 0 }
            segments.append(RunSegment(
                started: time, lastEvent: time, epoch: position("epoch"), batch: position("batch"),
                clockAtStart: clock ?? (event == "start" ? 0 : nil), clockAtEnd: nil,
                ending: "no stop recorded (running, or killed)", host: SegmentHost(event: object), compute: object["compute"] as? String))
            if event == "start", let source = object["init"] as? String {
                var words = "`\(source)` (`--init`: "
                words += object["init_kind"] as? String == "plan" ? "an inference plan's stored values" : "named weights"
                if let n = object["init_tensors"] as? Int, let v = object["init_values"] as? Int { words += ", \(n) tensors, \(v) values" }
                if let h = object["init_hash"] as? String { words += ", FNV-1a \(h)" }
                segments[segments.count - 1].initialWeights = words + ")"
            }
            ended = false
            continue
        }
        guard !segments.isEmpty else { continue }
        segments[segments.count - 1].lastEvent = time
        switch event {
        case "end":
            segments[segments.count - 1].ending = "finished"
            ended = true
        case "stopped":
            segments[segments.count - 1].ending = "stopped (\(object["reason"] as? String ?? "?"))"
            ended = true
        case "non_finite":
            segments[segments.count - 1].ending = "stopped (a non-finite loss)"
            ended = true
        default:
            break
        }
    }
    if !segments.isEmpty { segments[segments.count - 1].clockAtEnd = finalClock }
    return segments
}

/// What differs between the host a run's last segment trained on and the one about to resume
/// it, in words (nil when nothing recorded differs; fields a log did not record are not
/// compared). A run resumed elsewhere goes on correctly, but its steps round differently from
/// the ones it would have taken where it was (other kernels, or f32 where it had bf16), so it
/// is no longer bitwise the uninterrupted run: the trainer says so rather than leave it to the
/// report's segments table.
public func hostChange(last: RunSegment, host: SegmentHost?, compute: String?) -> String? {
    var changes: [String] = []
    if let was = last.compute, let now = compute, briefCompute(was) != briefCompute(now) {
        changes.append("compute \(briefCompute(was)), now \(briefCompute(now))")
    }
    if let was = last.host, let now = host { changes += was.differences(to: now) }
    guard !changes.isEmpty else { return nil }
    return "the run's last segment (from \(last.started)) ran elsewhere: " + changes.joined(separator: "; ")
        + ". Resuming here is correct, but the steps round differently from the ones it would have taken there,"
        + " so the run is no longer bitwise an uninterrupted one (its report lists each segment's CPU and compute)"
}

/// The segments of the run in `dir` (empty when it has no event log); throws only for a log
/// over `maxEventLogBytes` or one that cannot be read.
public func runSegments(dir: String, finalClock: Double?, maxBytes: Int = maxEventLogBytes) throws -> [RunSegment] {
    let path = dir + "/events.jsonl"
    guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
    defer { try? handle.close() }
    let bytes = try handle.read(upToCount: maxBytes + 1) ?? Data()
    guard bytes.count <= maxBytes else {
        throw TrainError("\(path): the event log is over \(maxBytes) bytes; not read for the report")
    }
    return runSegments(eventLog: [UInt8](bytes), finalClock: finalClock)
}

/// The report's section on the run's segments.
func segmentsMarkdown(_ segments: [RunSegment], finalClock: Double) -> String {
    guard !segments.isEmpty else { return "" }
    var md = "## Segments\n\n"
    md += "The processes that trained this run, from its event log (`events.jsonl`): \(segments.count) segment\(segments.count == 1 ? "" : "s"), "
    md += String(format: "%.1f s of training on the trainer's clock in all", finalClock)
    md += " (what each kept: work after a segment's last checkpoint that a kill lost is redone, and counted, by the next).\n\n"
    md += "| segment | started (UTC) | last event (UTC) | took over at | seconds | how it ended | CPU | compute |\n"
    md += "|---:|---|---|---|---:|---|---|---|\n"
    for (i, s) in segments.enumerated() {
        let seconds = s.seconds.map { String(format: "%.1f", $0) } ?? "-"
        let cells = [String(i + 1), s.started, s.lastEvent, "epoch \(s.epoch + 1), step \(s.batch + 1)", seconds, s.ending,
                     s.cpu ?? "-", s.compute.map(briefCompute) ?? "-"]
        md += "| " + cells.map(tableCell).joined(separator: " | ") + " |\n"
    }
    return md + "\n"
}

/// A value as one markdown table cell: a '|' of its own (from a CPU's name, say) would end the
/// cell and a trailing backslash escape the next separator, so both are escaped; a line break (from an
/// edited log) would end the row, so control characters become spaces.
func tableCell(_ value: String) -> String {
    var out = ""
    for c in value.unicodeScalars {
        switch c {
        case "\\": out += "\\\\"
        case "|": out += "\\|"
        case _ where c.properties.generalCategory == .control || c == "\u{2028}" || c == "\u{2029}": out += " "
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// "bf16 on AVX512_BF16" of the trainer's "compute: bf16 on AVX512_BF16 (the products of ...)".
func briefCompute(_ note: String) -> String {
    let s = note.hasPrefix("compute: ") ? String(note.dropFirst("compute: ".count)) : note
    return s.range(of: " (").map { String(s[..<$0.lowerBound]) } ?? s
}

/// The CPU's model name (Linux's /proc/cpuinfo; nil where there is none).
public func cpuModelName() -> String? {
    guard let handle = FileHandle(forReadingAtPath: "/proc/cpuinfo") else { return nil }
    defer { try? handle.close() }
    guard let data = try? handle.read(upToCount: 1 << 20), let text = String(data: data, encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("model name") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        return name.isEmpty ? nil : String(name.prefix(200))
    }
    return nil
}
