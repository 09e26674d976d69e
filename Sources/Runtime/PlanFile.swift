// The .plan file: a compiled plan on disk (docs/plan-format.md has the byte layout).
//
//   header   "FERGCPLN", format version u32 (major << 16 | minor), producer (u32 length + UTF-8),
//            zero padding to 8
//   sections each: zero padding until the payload will start 64-byte aligned, then tag (4
//            ASCII bytes), payload length u64, CRC-32 of the payload u32, payload
//            META  JSON: plan name, maxBatch, PlanMetadata, MemorySummary
//            BUFS  JSON: the buffers (the buffer layout, arena offsets included)
//            SCHD  JSON: the steps and the plan outputs
//            PARM  binary: sorted name table, then raw little-endian f32 data, 64-byte aligned
//   END      section "END " whose payload is the CRC-32 of every byte before its tag: the
//            header, the section headers and the padding; nothing may follow it.
//
// Everything is little-endian. Reading checks the magic, the major version, every section's
// bounds and CRC, the padding, the end marker, the presence of the required sections, the
// JSON and the parameter table, and then validates the plan as the executor would (plus size
// limits that keep every later product of sizes from overflowing), so a file that decodes is a
// plan the executor accepts. Any defect is a `PlanFileError` naming the section and the offset.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The runtime's version, written into every .plan file it produces.
public let runtimeVersion = "0.1.0"

public enum PlanFormat {
    public static let magic: [UInt8] = Array("FERGCPLN".utf8)
    /// Incompatible layout changes bump the major version; a reader refuses a newer major.
    public static let major: UInt16 = 1
    /// Compatible additions (new sections, new optional JSON keys) bump the minor version.
    public static let minor: UInt16 = 0
    public static var version: UInt32 { UInt32(major) << 16 | UInt32(minor) }
    /// Format 1.1: the PARM table's second word says how values are stored (0: f32, 1: IEEE
    /// half); files with f32 weights are still written as 1.0, byte for byte.
    public static let halfWeightsMinor: UInt16 = 1
    /// Format 1.2: encoding 2, f16 weights with a per-tensor word, so a tensor beyond the half
    /// range stays f32; written only when some tensor needs it.
    public static let mixedWeightsMinor: UInt16 = 2
    /// Who writes the file, in the header.
    public static var producer: String { "fergc-runtime \(runtimeVersion)" }

    public static let metadataTag = "META"
    public static let buffersTag = "BUFS"
    public static let scheduleTag = "SCHD"
    public static let parametersTag = "PARM"
    public static let endTag = "END "
    static let required = [metadataTag, buffersTag, scheduleTag, parametersTag]

    /// Every payload starts at a multiple of this (so parameter data is 64-byte aligned).
    public static let alignment = 64
    static let maxProducerBytes = 256
    static let maxNameBytes = 4096
    /// Limits a file must respect; they keep sizes and their products far from overflow.
    static let maxBatchLimit = 1 << 20
    static let maxPlanBytes = 1 << 40
    static let maxWorkspaceThreads = 4096
    static let maxKernelProduct = 1 << 52
}

// MARK: - Errors

public struct PlanFileError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// Cannot open, read or write the file.
        case io
        /// Not a .plan file at all (no magic).
        case notAPlan
        /// Written by a newer fergc (a higher major format version).
        case newerVersion
        /// A version this reader never wrote (major 0).
        case unsupportedVersion
        /// The file ends early.
        case truncated
        /// A CRC does not match: the bytes changed after writing.
        case checksum
        /// The bytes are intact but do not make sense (bad JSON, bad table, nonzero padding, ...).
        case malformed
        /// A required section is absent.
        case missingSection
        /// The plan decoded but the executor would reject it.
        case invalidPlan
    }

    public var kind: Kind
    /// The section's tag (e.g. "SCHD"), "header" or "end marker", when the error is in one.
    public var section: String?
    /// Byte offset in the file.
    public var offset: Int?
    public var message: String
    /// The file, when read from or written to a path.
    public var path: String?

    public init(_ kind: Kind, section: String? = nil, offset: Int? = nil, _ message: String, path: String? = nil) {
        self.kind = kind
        self.section = section
        self.offset = offset
        self.message = message
        self.path = path
    }

    /// "m.plan: section 'SCHD' at offset 320: CRC-32 mismatch ..."
    public var description: String {
        var s = path.map { "\($0): " } ?? ""
        switch (section, offset) {
        case let (section?, offset?):
            s += (section == "header" || section == "end marker" ? section : "section '\(section)'") + " at offset \(offset): "
        case let (section?, nil): s += (section == "header" || section == "end marker" ? section : "section '\(section)'") + ": "
        case let (nil, offset?): s += "offset \(offset): "
        case (nil, nil): break
        }
        return s + message
    }

    func at(_ path: String) -> PlanFileError { var e = self; e.path = path; return e }
}

/// A decoded file: the plan and what the file says about itself.
public struct PlanFile: Sendable {
    public struct Section: Sendable, Equatable {
        public var tag: String
        /// Offset of the payload in the file, and its length.
        public var offset: Int
        public var length: Int
    }
    public var plan: Plan
    public var formatMajor: Int
    public var formatMinor: Int
    public var producer: String
    /// Every section in file order, unknown (skipped) ones included; the end marker excluded.
    public var sections: [Section]
    public var fileBytes: Int
    /// SHA-256 of the PARM payload (see `weightsSHA256`).
    public var weightsSHA256: String
    public var formatVersion: String { "\(formatMajor).\(formatMinor)" }
}

// MARK: - Section payloads

/// META: what a plan says about itself.
private struct MetadataSection: Codable {
    var name: String
    var maxBatch: Int
    var metadata: PlanMetadata
    var memory: MemorySummary?
}

/// BUFS: the buffer layout.
private struct BuffersSection: Codable {
    var buffers: [BufferDesc]
}

/// SCHD: the steps, in order, and the buffers the caller reads.
private struct ScheduleSection: Codable {
    var steps: [Step]
    var outputs: [Int]
}

// MARK: - Writing

private struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func zeros(until multiple: Int, remainder: Int = 0) {
        while bytes.count % multiple != remainder { bytes.append(0) }
    }
    /// Pads, then writes a section header and its payload.
    mutating func section(_ tag: String, _ payload: [UInt8]) {
        zeros(until: PlanFormat.alignment, remainder: PlanFormat.alignment - 16)
        bytes += Array(tag.utf8)
        u64(UInt64(payload.count))
        u32(crc32(payload))
        bytes += payload
    }
}

private func align(_ n: Int, _ a: Int = PlanFormat.alignment) -> Int { (n + a - 1) / a * a }

private func utf8Precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

/// The PARM payload: its canonical bytes (the input of `weightsSHA256`).
///   u32 count, u32 encoding (0: f32; 1: IEEE half, format 1.1; 2: per tensor, format 1.2), then
///   per tensor in ascending UTF-8 name order: u32 name length, name, [u32 tensor encoding (0 f32,
///   1 half), only under encoding 2], u64 element count, u64 data offset (from the data start);
///   zero padding to 64; the data: each tensor's little-endian values, zero-padded to 64.
/// With `half`, a tensor whose values are all halves (`isHalfExact`) is stored in 2 bytes per
/// value and any other in 4; encoding 1 when every tensor is a half (the 1.1 layout, byte for
/// byte), 2 otherwise.
func encodeParameters(_ parameters: [String: [Float]], half: Bool = false) -> [UInt8] {
    let layout = parametersLayout(parameters, half: half)
    var w = ByteWriter()
    w.u32(UInt32(layout.names.count))
    w.u32(layout.encoding)
    var offset = 0
    for (name, isHalf) in zip(layout.names, layout.halves) {
        let count = parameters[name]!.count
        w.u32(UInt32(name.utf8.count))
        w.bytes += Array(name.utf8)
        if layout.encoding == 2 { w.u32(isHalf ? 1 : 0) }
        w.u64(UInt64(count))
        w.u64(UInt64(offset))
        offset = align(offset + (isHalf ? 2 : 4) * count)
    }
    w.zeros(until: PlanFormat.alignment)
    w.bytes.reserveCapacity(w.bytes.count + offset)
    for (name, isHalf) in zip(layout.names, layout.halves) {
        let values = parameters[name]!
        if isHalf {
            for v in values {
                let h = Float16(v).bitPattern
                w.bytes.append(UInt8(h & 0xFF))
                w.bytes.append(UInt8(h >> 8))
            }
        } else {
            #if _endian(little)
            values.withUnsafeBytes { w.bytes += $0 }
            #else
            for v in values { w.u32(v.bitPattern) }
            #endif
        }
        w.zeros(until: PlanFormat.alignment)
    }
    return w.bytes
}

/// The names in file order, which of them are stored as halves, and the PARM encoding word.
private func parametersLayout(_ parameters: [String: [Float]], half: Bool) -> (names: [String], halves: [Bool], encoding: UInt32) {
    let names = parameters.keys.sorted(by: utf8Precedes)
    guard half else { return (names, names.map { _ in false }, 0) }
    let halves = names.map { isHalfExact(parameters[$0]!) }
    return (names, halves, halves.allSatisfy { $0 } ? 1 : 2)
}

/// A .plan file's bytes for `plan`. Deterministic: equal plans give equal bytes. The plan is
/// not validated here (`writePlan` does).
public func encodePlan(_ plan: Plan) -> [UInt8] {
    var w = ByteWriter()
    w.bytes += PlanFormat.magic
    // The PARM payload first: its encoding word (0, 1 or 2) gives the format version, 1.0, 1.1
    // or 1.2, without a second pass over the values.
    let parameters = encodeParameters(plan.parameters, half: plan.metadata.weightsDType == "f16")
    let minor = [PlanFormat.minor, PlanFormat.halfWeightsMinor, PlanFormat.mixedWeightsMinor][Int(parameters[4])]
    w.u32(UInt32(PlanFormat.major) << 16 | UInt32(minor))
    let producer = Array(PlanFormat.producer.utf8)
    w.u32(UInt32(producer.count))
    w.bytes += producer
    w.zeros(until: 8)
    // The JSON encoder throws only when a value's `encode(to:)` does; the plan's never do.
    do {
        w.section(PlanFormat.metadataTag, try jsonEncode(MetadataSection(name: plan.name, maxBatch: plan.maxBatch, metadata: plan.metadata, memory: plan.memory)))
        w.section(PlanFormat.buffersTag, try jsonEncode(BuffersSection(buffers: plan.buffers)))
        w.section(PlanFormat.scheduleTag, try jsonEncode(ScheduleSection(steps: plan.steps, outputs: plan.outputs)))
    } catch {
        preconditionFailure("encoding a plan as JSON failed: \(error)")
    }
    w.section(PlanFormat.parametersTag, parameters)
    w.zeros(until: PlanFormat.alignment, remainder: PlanFormat.alignment - 16)
    let fileCRC = crc32(w.bytes)
    var end = ByteWriter()
    end.u32(fileCRC)
    w.section(PlanFormat.endTag, end.bytes)
    return w.bytes
}

/// SHA-256 (hex) of the canonical bytes of the plan's parameters (the PARM payload): equal
/// weights give equal hashes whatever the rest of the plan.
public func weightsSHA256(_ plan: Plan) -> String {
    sha256Hex(encodeParameters(plan.parameters, half: plan.metadata.weightsDType == "f16"))
}

/// Writes `plan` to `path` atomically: it is validated and encoded first, then written to a
/// temp file in the same directory, fsynced, renamed over `path`, and the directory fsynced.
/// On any failure the temp file is removed and whatever was at `path` is untouched.
public func writePlan(_ plan: Plan, to path: String) throws(PlanFileError) {
    do { try checkPlan(plan) } catch { throw error.at(path) }
    do { try writeFileAtomically(encodePlan(plan), to: path) } catch { throw PlanFileError(.io, error.what, path: path) }
}

// MARK: - Reading

/// Reads and decodes a .plan file; errors carry the path.
public func readPlan(path: String) throws(PlanFileError) -> Plan {
    try readPlanFile(path: path).plan
}

/// Reads and decodes a .plan file, with what the file says about itself.
public func readPlanFile(path: String) throws(PlanFileError) -> PlanFile {
    let bytes = try readWholeFile(path)
    do { return try decodePlanFile(bytes) } catch { throw error.at(path) }
}

/// Whether `path` is a regular file that begins with the plan magic: read like every input file,
/// opened without blocking (a FIFO or a device is no plan, and the reader the caller picks next
/// names the problem), 8 bytes only.
public func isPlanFile(_ path: String) -> Bool {
    guard let head = try? readRegularFilePrefix(path, count: PlanFormat.magic.count) else { return false }
    return head == PlanFormat.magic
}

/// Why a plan's values cannot start a compile or a training run (`inferencePlanParameters`).
public struct PlanValuesError: Error, CustomStringConvertible {
    public let description: String
}

/// An inference plan's parameters as they are stored (batchnorm folded into the convolution
/// before it, f16 widened), for what starts from them when the checkpoint is gone: `fergc
/// compile M.graph --weights P.plan` and `fergc train M.graph --init P.plan`. The plan is read
/// whole first (magic, version, CRC of every section). An ensemble plan is refused (its members'
/// tensors are prefixed; `fergc ensemble --member K` takes one out), and so is a training plan.
public func inferencePlanParameters(path: String) throws -> [String: [Float]] {
    let plan = try readPlan(path: path)
    if plan.metadata.ensemble != nil {
        throw PlanValuesError(description: "\(path): an ensemble plan; take one member out first (fergc ensemble --member K \(path) -o M.plan) and start from that")
    }
    guard plan.metadata.mode == "inference" else {
        throw PlanValuesError(description: "\(path): a \(plan.metadata.mode) plan; only an inference plan's values (or the run's checkpoint) can start a compile or a run")
    }
    return plan.parameters
}

func readWholeFile(_ path: String) throws(PlanFileError) -> [UInt8] {
    // Opened without blocking (a FIFO is refused, not waited on) and checked to be a regular file.
    do { return try readRegularFile(path) } catch { throw PlanFileError(.io, error.what, path: path) }
}

/// Decodes the bytes of a .plan file (see `decodePlanFile`).
public func decodePlan(_ bytes: [UInt8]) throws(PlanFileError) -> Plan {
    try decodePlanFile(bytes).plan
}

/// Bounds-checked little-endian reads; every failure names the section and the offset.
private struct ByteReader {
    let bytes: [UInt8]
    var pos: Int
    var section: String

    func truncated(_ what: String, need: Int) -> PlanFileError {
        PlanFileError(.truncated, section: section, offset: pos,
                      "the file ends in \(what): \(need) bytes needed, \(max(bytes.count - pos, 0)) left (file of \(bytes.count) bytes)")
    }
    mutating func take(_ n: Int, _ what: String) throws(PlanFileError) -> Range<Int> {
        guard n >= 0, n <= bytes.count - pos else { throw truncated(what, need: n) }
        defer { pos += n }
        return pos..<pos + n
    }
    mutating func u32(_ what: String) throws(PlanFileError) -> UInt32 {
        let r = try take(4, what)
        return (0..<4).reduce(0) { $0 | UInt32(bytes[r.lowerBound + $1]) << UInt32(8 * $1) }
    }
    mutating func u64(_ what: String) throws(PlanFileError) -> UInt64 {
        let r = try take(8, what)
        return (0..<8).reduce(0) { $0 | UInt64(bytes[r.lowerBound + $1]) << UInt64(8 * $1) }
    }
    /// Zero bytes until `pos % multiple == remainder`.
    mutating func padding(until multiple: Int, remainder: Int = 0, _ what: String) throws(PlanFileError) {
        while pos % multiple != remainder {
            guard pos < bytes.count else { throw truncated(what, need: 1) }
            guard bytes[pos] == 0 else {
                throw PlanFileError(.malformed, section: section, offset: pos, "padding byte is 0x\(String(bytes[pos], radix: 16)), not zero")
            }
            pos += 1
        }
    }
}

private func printableTag(_ bytes: ArraySlice<UInt8>) -> String? {
    guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

/// What a file that is not a plan seems to be, from its first bytes, with what to do instead:
/// the files a user most often hands a command that wants a plan. nil when nothing is recognized.
private func fileKindHint(_ bytes: [UInt8]) -> String? {
    func starts(_ p: [UInt8]) -> Bool { bytes.count >= p.count && Array(bytes[0..<p.count]) == p }
    if starts([0x50, 0x4B, 0x03, 0x04]) {
        return "it is a zip archive, such as a training checkpoint (.npz): a plan is compiled from the model and its weights with `fergc compile M.graph --weights CHECKPOINT.npz -o M.plan`"
    }
    if starts([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) { return "it is a NumPy array (.npy), not a plan" }
    if starts([0x1F, 0x8B]) { return "it is gzip data, such as a dataset (.csv.gz), not a plan" }
    if starts([0x89, 0x50, 0x4E, 0x47]) { return "it is a PNG image, not a plan" }
    if starts([0xFF, 0xD8, 0xFF]) { return "it is a JPEG image, not a plan" }
    // An ONNX model is a protobuf whose first fields are ir_version (tag 0x08, a small varint)
    // and producer_name (tag 0x12) as every exporter writes them.
    if bytes.count >= 4, bytes[0] == 0x08, bytes[1] < 0x80, bytes[2] == 0x12 {
        return "it looks like an ONNX model: `fergc import MODEL.onnx -o M.graph` reads it into a model graph, which `fergc compile` turns into a plan"
    }
    let head = bytes.prefix(256)
    if head.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 >= 0x80 }) {
        let text = String(decoding: head, as: UTF8.self)
        let graphLike = text.hasPrefix("#") || text.hasPrefix("model ") || text.contains("\nmodel ")
        return graphLike
            ? "it looks like text, such as a model graph (.graph): a plan is compiled from it with `fergc compile M.graph -o M.plan`"
            : "it looks like text, not a plan"
    }
    return nil
}

private func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

/// Decodes and validates the bytes of a .plan file.
public func decodePlanFile(_ bytes: [UInt8]) throws(PlanFileError) -> PlanFile {
    var r = ByteReader(bytes: bytes, pos: 0, section: "header")
    // Header.
    guard bytes.count >= 8 else {
        throw PlanFileError(.notAPlan, section: "header", offset: 0, "not a fergc plan file: \(bytes.count) bytes, too short for the 8-byte magic '\(String(decoding: PlanFormat.magic, as: UTF8.self))'")
    }
    guard Array(bytes[0..<8]) == PlanFormat.magic else {
        let shown = printableTag(bytes[0..<8]).map { "'\($0)'" } ?? hexString(Array(bytes[0..<8]))
        let kind = fileKindHint(bytes).map { " (\($0))" } ?? ""
        throw PlanFileError(.notAPlan, section: "header", offset: 0, "not a fergc plan file: the magic is \(shown), expected 'FERGCPLN'\(kind)")
    }
    r.pos = 8
    let version = try r.u32("the format version")
    let major = Int(version >> 16), minor = Int(version & 0xFFFF)
    guard major <= Int(PlanFormat.major) else {
        throw PlanFileError(.newerVersion, section: "header", offset: 8, "written by a newer fergc: format version \(major).\(minor); this runtime (\(runtimeVersion)) reads format \(PlanFormat.major).x — upgrade fergc or recompile the model")
    }
    guard major >= 1 else {
        throw PlanFileError(.unsupportedVersion, section: "header", offset: 8, "unsupported format version \(major).\(minor); this runtime reads format \(PlanFormat.major).x")
    }
    let producerOffset = r.pos
    let producerLength = Int(try r.u32("the producer length"))
    guard producerLength <= PlanFormat.maxProducerBytes else {
        throw PlanFileError(.malformed, section: "header", offset: producerOffset, "producer string of \(producerLength) bytes (at most \(PlanFormat.maxProducerBytes))")
    }
    let producerRange = try r.take(producerLength, "the producer string")
    guard let producer = String(validating: bytes[producerRange], as: UTF8.self) else {
        throw PlanFileError(.malformed, section: "header", offset: producerRange.lowerBound, "producer string is not valid UTF-8")
    }
    try r.padding(until: 8, "the header padding")

    // Sections, up to the end marker.
    var sections: [PlanFile.Section] = []
    var found: [String: Range<Int>] = [:]
    while true {
        r.section = "header"
        try r.padding(until: PlanFormat.alignment, remainder: PlanFormat.alignment - 16, "the padding before a section (no end marker yet)")
        let headerOffset = r.pos
        let tagRange = try r.take(4, "a section header (no end marker yet)")
        guard let tag = printableTag(bytes[tagRange]) else {
            throw PlanFileError(.malformed, section: nil, offset: headerOffset, "section tag \(hexString(Array(bytes[tagRange]))) is not ASCII: not a section header (the file is corrupt)")
        }
        r.section = tag == PlanFormat.endTag ? "end marker" : tag
        let length = try r.u64("the header of section '\(tag)'")
        let storedCRC = try r.u32("the header of section '\(tag)'")
        let payloadOffset = r.pos
        guard length <= UInt64(bytes.count - payloadOffset) else {
            throw PlanFileError(.truncated, section: r.section, offset: headerOffset, "the payload of \(length) bytes runs past the end of the file (\(bytes.count - payloadOffset) bytes left)")
        }
        let payload = try r.take(Int(length), "the payload")
        let crc = crc32(bytes, payload)
        guard crc == storedCRC else {
            throw PlanFileError(.checksum, section: r.section, offset: headerOffset, "CRC-32 mismatch over the \(length)-byte payload at offset \(payloadOffset): stored \(hex32(storedCRC)), computed \(hex32(crc)); the file is corrupt")
        }
        if tag == PlanFormat.endTag {
            guard length == 4 else {
                throw PlanFileError(.malformed, section: "end marker", offset: headerOffset, "payload of \(length) bytes; expected 4")
            }
            var e = ByteReader(bytes: bytes, pos: payloadOffset, section: "end marker")
            let storedFile = try e.u32("the end marker")
            let fileCRC = crc32(bytes, 0..<headerOffset)
            guard storedFile == fileCRC else {
                throw PlanFileError(.checksum, section: "end marker", offset: headerOffset, "CRC-32 mismatch over the header, section headers and padding (bytes 0..<\(headerOffset)): stored \(hex32(storedFile)), computed \(hex32(fileCRC)); the file is corrupt")
            }
            guard r.pos == bytes.count else {
                throw PlanFileError(.malformed, section: "end marker", offset: r.pos, "\(bytes.count - r.pos) bytes after the end marker")
            }
            break
        }
        if found[tag] != nil {
            throw PlanFileError(.malformed, section: tag, offset: headerOffset, "a second '\(tag)' section")
        }
        // Unknown sections (from a newer minor version) are skipped.
        found[tag] = payload
        sections.append(.init(tag: tag, offset: payloadOffset, length: Int(length)))
    }
    for tag in PlanFormat.required where found[tag] == nil {
        let seen = sections.map { "'\($0.tag)'" }.joined(separator: ", ")
        throw PlanFileError(.missingSection, section: tag, offset: nil, "required section missing (the file has \(seen.isEmpty ? "no sections" : seen))")
    }

    func json<T: Decodable>(_ type: T.Type, _ tag: String) throws(PlanFileError) -> T {
        let range = found[tag]!
        do {
            return try jsonDecode(type, from: Array(bytes[range]))
        } catch let e as JSONSyntaxError {
            throw PlanFileError(.malformed, section: tag, offset: range.lowerBound + e.offset, "bad JSON: \(e.message)")
        } catch let e as DecodingError {
            throw PlanFileError(.malformed, section: tag, offset: range.lowerBound, describe(e) + unknownKernelHint(e, Array(bytes[range])))
        } catch {
            throw PlanFileError(.malformed, section: tag, offset: range.lowerBound, "\(error)")
        }
    }
    let meta = try json(MetadataSection.self, PlanFormat.metadataTag)
    let layout = try json(BuffersSection.self, PlanFormat.buffersTag)
    let schedule = try json(ScheduleSection.self, PlanFormat.scheduleTag)
    let parmRange = found[PlanFormat.parametersTag]!
    let parameters = try decodeParameters(bytes, parmRange)

    var plan = Plan(name: meta.name, buffers: layout.buffers, steps: schedule.steps, maxBatch: meta.maxBatch, outputs: schedule.outputs)
    plan.metadata = meta.metadata
    plan.memory = meta.memory
    plan.parameters = parameters
    try checkPlan(plan)
    var hasher = SHA256()
    bytes.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[parmRange])) }
    return PlanFile(plan: plan, formatMajor: major, formatMinor: minor, producer: producer, sections: sections,
                    fileBytes: bytes.count, weightsSHA256: hexString(hasher.finish()))
}

/// " (unknown kernel 'k': ...)" when a decoding error is about a step's kernel object with one
/// key that this runtime does not know; "" otherwise.
private func unknownKernelHint(_ error: DecodingError, _ json: [UInt8]) -> String {
    guard case .typeMismatch(_, let c) = error, c.codingPath.count == 3, c.codingPath[0].stringValue == "steps",
          let i = c.codingPath[1].intValue, c.codingPath[2].stringValue == "kernel",
          case .object(let top)? = try? JSONParser.parse(json),
          case .array(let steps)? = top.first(where: { $0.0 == "steps" })?.1, steps.indices.contains(i),
          case .object(let step) = steps[i], case .object(let kernel)? = step.first(where: { $0.0 == "kernel" })?.1,
          kernel.count == 1
    else { return "" }
    return " (unknown kernel '\(kernel[0].0)': the plan was written by a newer fergc, or the file is corrupt)"
}

/// Reads the PARM payload at `range` of `bytes` (the canonical layout `encodeParameters` writes,
/// and only it).
private func decodeParameters(_ bytes: [UInt8], _ range: Range<Int>) throws(PlanFileError) -> [String: [Float]] {
    let tag = PlanFormat.parametersTag
    var r = ByteReader(bytes: bytes, pos: range.lowerBound, section: tag)
    func bad(_ offset: Int, _ message: String) -> PlanFileError { PlanFileError(.malformed, section: tag, offset: offset, message) }
    let payloadBytes = range.count
    guard payloadBytes >= 8 else { throw bad(range.lowerBound, "payload of \(payloadBytes) bytes; the table needs at least 8") }
    let count = Int(try r.u32("the parameter count"))
    guard count <= payloadBytes / 20 else { throw bad(range.lowerBound, "\(count) parameters cannot fit a \(payloadBytes)-byte section") }
    // The value encoding: 0 f32; 1 IEEE half (widened to f32 here), format 1.1; 2 per tensor, 1.2.
    let encoding = try r.u32("the value encoding")
    guard encoding <= 2 else { throw bad(range.lowerBound + 4, "value encoding \(encoding) is not 0 (f32), 1 (f16) or 2 (per tensor)") }
    var entries: [(name: String, count: Int, offset: Int, size: Int)] = []
    var expectedOffset = 0
    for i in 0..<count {
        let entryOffset = r.pos
        let nameLength = Int(try r.u32("the name length of parameter \(i)"))
        guard nameLength > 0, nameLength <= PlanFormat.maxNameBytes, nameLength <= range.upperBound - r.pos else {
            throw bad(entryOffset, "parameter \(i): name length \(nameLength) is not in 1...\(min(PlanFormat.maxNameBytes, max(range.upperBound - r.pos, 0)))")
        }
        let nameRange = try r.take(nameLength, "the name of parameter \(i)")
        guard let name = String(validating: bytes[nameRange], as: UTF8.self) else { throw bad(nameRange.lowerBound, "parameter \(i): name is not valid UTF-8") }
        if let previous = entries.last?.name, !utf8Precedes(previous, name) {
            throw bad(entryOffset, "parameter \(i) '\(name)' is not after '\(previous)': names must be distinct and sorted")
        }
        var size = encoding == 1 ? 2 : 4
        if encoding == 2 {
            guard r.pos + 4 <= range.upperBound else { throw bad(r.pos, "parameter \(i) '\(name)': the table runs past the section") }
            let own = try r.u32("the encoding of parameter \(i)")
            guard own <= 1 else { throw bad(r.pos - 4, "parameter \(i) '\(name)': encoding \(own) is not 0 (f32) or 1 (f16)") }
            size = own == 1 ? 2 : 4
        }
        guard r.pos + 16 <= range.upperBound else { throw bad(r.pos, "parameter \(i) '\(name)': the table runs past the section") }
        let elements = try r.u64("the element count of parameter \(i)")
        let offset = try r.u64("the data offset of parameter \(i)")
        guard elements <= UInt64(payloadBytes / size) else { throw bad(entryOffset, "parameter \(i) '\(name)': \(elements) elements cannot fit a \(payloadBytes)-byte section") }
        guard offset == UInt64(expectedOffset) else { throw bad(entryOffset, "parameter \(i) '\(name)': data offset \(offset), expected \(expectedOffset)") }
        entries.append((name, Int(elements), expectedOffset, size))
        expectedOffset = align(expectedOffset + size * Int(elements))
    }
    // The table, the padding to 64 (relative to the payload, itself 64-aligned), then the data.
    while (r.pos - range.lowerBound) % PlanFormat.alignment != 0 {
        guard r.pos < range.upperBound else { throw bad(r.pos, "the section ends inside the table padding") }
        guard bytes[r.pos] == 0 else { throw bad(r.pos, "table padding byte is 0x\(String(bytes[r.pos], radix: 16)), not zero") }
        r.pos += 1
    }
    let dataStart = r.pos
    guard range.upperBound - dataStart == expectedOffset else {
        throw bad(dataStart, "the data is \(range.upperBound - dataStart) bytes; the table describes \(expectedOffset)")
    }
    if encoding == 2, entries.allSatisfy({ $0.size == 2 }) {
        throw bad(range.lowerBound + 4, "value encoding 2 (per tensor) but every tensor is f16; such a file is written with encoding 1")
    }
    var result: [String: [Float]] = [:]
    for (k, e) in entries.enumerated() {
        let start = dataStart + e.offset
        let size = e.size
        let values = size == 2 ? decodeHalves(bytes, start: start, count: e.count) : bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: e.count) { out, initialized in
                #if _endian(little)
                if e.count > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[start..<start + 4 * e.count])) }
                #else
                for i in 0..<e.count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: start + 4 * i, as: UInt32.self))) }
                #endif
                initialized = e.count
            }
        }
        // Canonical per-tensor layout: under encoding 2 a tensor is f32 only when it must be.
        if encoding == 2, size == 4, isHalfExact(values) {
            throw bad(start, "parameter '\(e.name)' is stored as f32 but every value is a half; encoding 2 keeps f32 only for tensors that need it")
        }
        let end = k + 1 < entries.count ? dataStart + entries[k + 1].offset : range.upperBound
        for p in start + size * e.count..<end where bytes[p] != 0 {
            throw bad(p, "data padding after '\(e.name)' is 0x\(String(bytes[p], radix: 16)), not zero")
        }
        result[e.name] = values
    }
    return result
}

// MARK: - Validation

/// Collects the integers of a kernel (geometry, counts, shapes) through reflection, so a kernel
/// added later is covered without a change here.
private func kernelIntegers(_ value: Any, into out: inout [Int], depth: Int = 0) {
    if let i = value as? Int { out.append(i); return }
    guard depth < 8 else { return }
    for child in Mirror(reflecting: value).children { kernelIntegers(child.value, into: &out, depth: depth + 1) }
}

/// The checks a decoded plan must pass (and that `writePlan` runs first): size limits that keep
/// the executor's products of sizes from overflowing, then the executor's own validation.
func checkPlan(_ plan: Plan) throws(PlanFileError) {
    func invalid(_ section: String, _ message: String) -> PlanFileError { PlanFileError(.invalidPlan, section: section, offset: nil, "invalid plan: \(message)") }
    guard (1...PlanFormat.maxBatchLimit).contains(plan.maxBatch) else {
        throw invalid(PlanFormat.metadataTag, "maxBatch \(plan.maxBatch) is outside 1...\(PlanFormat.maxBatchLimit)")
    }
    var total = 0
    for (i, b) in plan.buffers.enumerated() {
        if let v = b.views, !(1...64).contains(v) {
            throw invalid(PlanFormat.buffersTag, "buffer \(i) '\(b.name)' has \(v) views per sample; 1...64 are allowed")
        }
        // A caller fills every input (`fergc bench` with random values); an input holding
        // nothing a sample has nothing to fill, and filling it trapped.
        if b.role == .input && b.perSample.contains(0) {
            throw invalid(PlanFormat.buffersTag, "input buffer \(i) '\(b.name)' has shape \(b.perSample): an input holds at least one value a sample")
        }
        var elements = plan.maxBatch * (b.views ?? 1)
        for d in b.perSample {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow, p <= PlanFormat.maxPlanBytes / 4 else {
                throw invalid(PlanFormat.buffersTag, "buffer \(i) '\(b.name)' with shape \(b.perSample) is too large (or negative) at batch \(plan.maxBatch)")
            }
            elements = p
        }
        total += elements * 4
        guard total <= PlanFormat.maxPlanBytes else {
            throw invalid(PlanFormat.buffersTag, "the buffers need more than \(PlanFormat.maxPlanBytes) bytes at batch \(plan.maxBatch)")
        }
    }
    for (s, step) in plan.steps.enumerated() {
        var ints: [Int] = []
        kernelIntegers(step.kernel, into: &ints)
        var product = 1
        for v in ints where v != 0 {
            let (p, overflow) = product.multipliedReportingOverflow(by: v.magnitude > UInt(Int.max) ? Int.max : Int(v.magnitude))
            guard !overflow, p <= PlanFormat.maxKernelProduct else {
                throw invalid(PlanFormat.scheduleTag, "step \(s) '\(step.name)': the kernel's sizes \(ints) are too large")
            }
            product = p
        }
    }
    if let m = plan.memory {
        for (name, v) in [("arena", m.arenaBytes), ("naive", m.naiveBytes), ("parameter", m.parameterBytes), ("optimizer", m.optimizerBytes), ("workspace", m.workspaceBytes), ("input", m.inputBytes)] {
            guard (0...PlanFormat.maxPlanBytes).contains(v) else { throw invalid(PlanFormat.metadataTag, "memory summary: \(name) bytes \(v) outside 0...\(PlanFormat.maxPlanBytes)") }
        }
        // The compiling machine's thread count, which `ensemble` sizes the merged plan's
        // workspace by: a product of it must not overflow.
        if let t = m.workspaceThreads, !(1...PlanFormat.maxWorkspaceThreads).contains(t) {
            throw invalid(PlanFormat.metadataTag, "memory summary: workspace threads \(t) outside 1...\(PlanFormat.maxWorkspaceThreads)")
        }
    }
    // In a file a buffer's name is how the parameters, the inputs and every caller find it.
    var bufferNames = Set<String>()
    for b in plan.buffers where !bufferNames.insert(b.name).inserted {
        throw invalid(PlanFormat.buffersTag, "two buffers are named '\(b.name)'")
    }
    let shape = plan.metadata.inputShape
    guard shape.count <= 8, shape.allSatisfy({ (0...(1 << 16)).contains($0) }) else {
        throw invalid(PlanFormat.metadataTag, "metadata input shape \(shape) is not a plausible image shape")
    }
    do {
        try validate(plan)
    } catch let e as ExecutorError {
        throw PlanFileError(.invalidPlan, section: nil, offset: nil, e.description)
    } catch {
        throw PlanFileError(.invalidPlan, section: nil, offset: nil, "invalid plan: \(error)")
    }
}

// MARK: - Half weights (format 1.1; HalfWeights.swift)

/// `count` little-endian halves from `start`, widened.
func decodeHalves(_ bytes: [UInt8], start: Int, count: Int) -> [Float] {
    (0..<count).map { i in
        Float(Float16(bitPattern: UInt16(bytes[start + 2 * i]) | UInt16(bytes[start + 2 * i + 1]) << 8))
    }
}
