// FER2013 in the Kaggle CSV format: a header naming the columns (`emotion,pixels,Usage`), then
// one row per 48x48 grayscale face with 2304 space-separated pixel values. Plain or gzip,
// read streaming. A malformed row is an error naming the file and line, unless the caller
// asks to skip bad rows, in which case they are counted and the first few reported.

import CZlib
#if canImport(Runtime)  // one module with Runtime in the fuzz builds (Tools/fuzz)
import Runtime
#endif

#if canImport(Glibc)
import Glibc
#endif

public enum Emotion: Int, CaseIterable, Sendable {
    case angry, disgust, fear, happy, sad, surprise, neutral
    public var name: String {
        ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"][rawValue]
    }
    public static let names = allCases.map(\.name)
}

public enum Split: String, CaseIterable, Sendable {
    case training = "Training"
    case publicTest = "PublicTest"
    case privateTest = "PrivateTest"
}

/// Images of one split: `pixels` holds `count` images of 48x48 bytes, row-major.
public struct FaceSet: Sendable {
    public static let side = 48
    public static let pixelsPerImage = side * side
    public var pixels: [UInt8] = []
    public var labels: [UInt8] = []
    public var count: Int { labels.count }
    public init() {}

    public mutating func append(label: Int, pixels p: [UInt8]) {
        labels.append(UInt8(label))
        pixels.append(contentsOf: p)
    }

    /// Every face of `other` after these.
    public mutating func append(contentsOf other: FaceSet) {
        labels.append(contentsOf: other.labels)
        pixels.append(contentsOf: other.pixels)
    }
}

public struct FERData: Sendable {
    public var splits: [Split: FaceSet] = [:]
    public var skippedRows = 0
    /// The first skipped rows' errors, for the report.
    public var skippedExamples: [String] = []
    public var source: String = ""

    public subscript(split: Split) -> FaceSet { splits[split] ?? FaceSet() }
}

public struct DataError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads lines from a plain or gzip file (several gzip members allowed), streaming in chunks.
final class LineReader {
    let path: String
    private let file: UnsafeMutablePointer<FILE>
    private let gzip: Bool
    private var stream = z_stream()
    /// Bytes read per fread, and decompressed per inflate (4x); at most the file's size for
    /// plain files, so a small file costs small buffers.
    private let chunk: Int
    private let input: UnsafeMutablePointer<UInt8>
    private let output: UnsafeMutablePointer<UInt8>?
    private var pending: [UInt8] = []
    private var pendingStart = 0
    private var atEnd = false
    /// 1-based number of the line `next()` returned last.
    private(set) var lineNumber = 0

    /// `chunk` (default 64 KiB) is the read size; tests and the fuzz target pass small ones
    /// so that chunk boundaries fall inside lines, CRLF pairs and gzip members.
    init(path: String, chunk: Int = 1 << 16) throws {
        self.path = path
        // Opened without blocking (a FIFO is refused, not waited on); regular files only.
        let opened: (fd: Int32, size: Int)
        do { opened = try openRegularFile(path) } catch { throw DataError(error.description) }
        guard let f = fdopen(opened.fd, "rb") else {
            close(opened.fd)
            throw DataError("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        file = f
        var magic: (UInt8, UInt8) = (0, 0)
        let n = withUnsafeMutableBytes(of: &magic) { fread($0.baseAddress, 1, 2, f) }
        rewind(f)
        gzip = n == 2 && magic.0 == 0x1f && magic.1 == 0x8b
        // A plain file needs no larger reads than itself (+1 to see the end in one read).
        self.chunk = gzip ? max(1, chunk) : max(1, min(chunk, opened.size + 1))
        input = .allocate(capacity: self.chunk)
        output = gzip ? .allocate(capacity: self.chunk * 4) : nil
        if gzip {
            let status = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else {
                fclose(f)
                throw DataError("\(path): zlib init failed (status \(status))")
            }
        }
    }

    deinit {
        if gzip { inflateEnd(&stream) }
        input.deallocate()
        output?.deallocate()
        fclose(file)
    }

    private func readChunk() throws -> Int {
        let n = fread(input, 1, chunk, file)
        if n == 0, ferror(file) != 0 { throw DataError("\(path): read error") }
        return n
    }

    /// Appends decoded bytes to `pending`; false at the end of the data.
    private func fill() throws -> Bool {
        if atEnd { return false }
        if !gzip {
            let n = try readChunk()
            if n == 0 { atEnd = true; return false }
            pending.append(contentsOf: UnsafeBufferPointer(start: input, count: n))
            return true
        }
        while true {
            if stream.avail_in == 0 {
                let n = try readChunk()
                if n == 0 {
                    atEnd = true
                    if stream.total_out > 0 && streamEnded { return false }
                    throw DataError("\(path): the gzip data is truncated")
                }
                stream.next_in = input
                stream.avail_in = UInt32(n)
            }
            if streamEnded {
                // Another gzip member follows.
                inflateReset(&stream)
                streamEnded = false
            }
            guard let output else { return false }  // set whenever gzip is
            stream.next_out = output
            stream.avail_out = UInt32(chunk * 4)
            let status = inflate(&stream, Z_NO_FLUSH)
            let made = chunk * 4 - Int(stream.avail_out)
            if status == Z_STREAM_END {
                streamEnded = true
            } else if status != Z_OK && status != Z_BUF_ERROR {
                throw DataError("\(path): corrupt gzip data (zlib status \(status))")
            }
            if made > 0 {
                pending.append(contentsOf: UnsafeBufferPointer(start: output, count: made))
                return true
            }
            if streamEnded, stream.avail_in == 0 {
                let n = try readChunk()
                if n == 0 { atEnd = true; return false }
                stream.next_in = input
                stream.avail_in = UInt32(n)
            }
        }
    }
    private var streamEnded = false

    /// The next line without its terminator (`\n` or `\r\n`), or nil at the end.
    func next() throws -> ArraySlice<UInt8>? {
        while true {
            // Resume the search where the last one stopped: linear in the file, however long
            // the lines. Terminators: \n, \r\n and a lone \r (old Mac / Excel exports).
            let from = max(scanned, pendingStart)
            let hit: Int? = pending.withUnsafeBufferPointer { p in
                var i = from
                while i < p.count {
                    let b = p[i]
                    if b == 10 { return i }
                    if b == 13 { return i + 1 < p.count || atEnd ? i : nil }  // \r last: need the next byte
                    i += 1
                }
                return nil
            }
            if let end = hit {
                let line = pending[pendingStart..<end]
                var next = end + 1
                if pending[end] == 13, next < pending.count, pending[next] == 10 { next += 1 }
                pendingStart = next
                scanned = next
                lineNumber += 1
                return line
            }
            scanned = pending.count
            if pending.last == 13 { scanned -= 1 }
            guard scanned - pendingStart <= LineReader.maxLineBytes else {
                throw DataError("\(path):\(lineNumber + 1): a line longer than \(LineReader.maxLineBytes) bytes (a FER2013 row is about 8 KB); is this a FER2013 CSV?")
            }
            if pendingStart > 0 {
                pending.removeFirst(pendingStart)
                scanned -= pendingStart
                pendingStart = 0
            }
            if try !fill() {
                if scanned < pending.count { continue }  // a \r at the very end: decidable now
                guard pendingStart < pending.count else { return nil }
                let line = pending[pendingStart...]
                pendingStart = pending.count
                scanned = pending.count
                lineNumber += 1
                return line
            }
        }
    }
    /// pending[pendingStart..<scanned] holds no line terminator.
    private var scanned = 0
    /// The longest line accepted (a FER2013 row is about 8 KB).
    static let maxLineBytes = 1 << 20
}

public struct LoadOptions: Sendable {
    /// Skip malformed rows (counted and reported) instead of failing on the first.
    public var skipBadRows = false
    /// Only keep these splits (all when empty).
    public var splits: Set<Split> = []
    public init(skipBadRows: Bool = false, splits: Set<Split> = []) {
        self.skipBadRows = skipBadRows
        self.splits = splits
    }
}

/// Reads a FER2013 CSV (plain or gzip). Columns are found by the header, so `emotion,pixels`
/// files (no Usage column: every row is Training) work too.
public func loadFER2013(path: String, options: LoadOptions = LoadOptions()) throws -> FERData {
    try loadFER2013(path: path, options: options, chunk: 1 << 16)
}

/// `chunk`: the reader's read size (small ones in tests and the fuzz target).
func loadFER2013(path: String, options: LoadOptions, chunk: Int) throws -> FERData {
    let reader = try LineReader(path: path, chunk: chunk)
    guard let headerLine = try reader.next() else { throw DataError("\(path): the file is empty") }
    let header = String(decoding: headerLine, as: UTF8.self).split(separator: ",", omittingEmptySubsequences: false)
        .map { String($0).trimmingCharacters(in: " \t\u{FEFF}") }
    guard let emotionColumn = header.firstIndex(of: "emotion"), let pixelsColumn = header.firstIndex(of: "pixels") else {
        throw DataError("\(path):1: expected a header naming the columns 'emotion' and 'pixels' (as in Kaggle's fer2013.csv: emotion,pixels,Usage), got '\(header.joined(separator: ","))'")
    }
    let usageColumn = header.firstIndex(of: "Usage")
    var data = FERData()
    data.source = path
    var pixels = [UInt8](repeating: 0, count: FaceSet.pixelsPerImage)
    var fields: [ArraySlice<UInt8>] = []
    while let line = try reader.next() {
        if line.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
        do {
            splitFields(line, into: &fields)
            guard fields.count == header.count else {
                throw DataError("expected \(header.count) fields (\(header.joined(separator: ","))), found \(fields.count)")
            }
            guard let emotion = parseInt(fields[emotionColumn]), (0..<7).contains(emotion) else {
                throw DataError("emotion must be an integer 0..6, got '\(String(decoding: fields[emotionColumn].prefix(20), as: UTF8.self))'")
            }
            var split = Split.training
            if let u = usageColumn {
                let text = String(decoding: fields[u], as: UTF8.self).trimmingCharacters(in: " \t")
                guard let s = Split(rawValue: text) else {
                    throw DataError("Usage must be Training, PublicTest or PrivateTest, got '\(text.prefix(20))'")
                }
                split = s
            }
            try parsePixels(fields[pixelsColumn], into: &pixels)
            if options.splits.isEmpty || options.splits.contains(split) {
                data.splits[split, default: FaceSet()].append(label: emotion, pixels: pixels)
            }
        } catch let e as DataError {
            let message = "\(path):\(reader.lineNumber): \(e.message)"
            guard options.skipBadRows else { throw DataError(message + " (use --skip-bad-rows to skip such rows)") }
            data.skippedRows += 1
            if data.skippedExamples.count < 5 { data.skippedExamples.append(message) }
        }
    }
    return data
}

/// The comma-separated fields of a line (empty ones kept), found with memchr: a row is ~8 KB
/// of pixels and this runs once per row.
private func splitFields(_ line: ArraySlice<UInt8>, into fields: inout [ArraySlice<UInt8>]) {
    fields.removeAll(keepingCapacity: true)
    var start = line.startIndex
    line.withUnsafeBufferPointer { p in
        guard let base = p.baseAddress else { return }
        var offset = 0
        while offset < p.count, let hit = memchr(base + offset, 44, p.count - offset) {  // ','
            let at = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            fields.append(line[start..<line.startIndex + at])
            start = line.startIndex + at + 1
            offset = at + 1
        }
    }
    fields.append(line[start..<line.endIndex])
}

private func parseInt(_ bytes: ArraySlice<UInt8>) -> Int? {
    var v = 0
    var any = false
    for b in bytes {
        if b == 32 || b == 9 { if any { break } else { continue } }
        guard b >= 48, b <= 57, v < 1_000_000 else { return nil }
        v = v * 10 + Int(b - 48)
        any = true
    }
    return any ? v : nil
}

/// Parses 2304 space-separated integers 0..255.
private func parsePixels(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) throws {
    var count = 0
    var value = 0
    var inNumber = false
    for b in bytes {
        if b >= 48, b <= 57 {
            value = value * 10 + Int(b - 48)
            if value > 255 { throw DataError("pixel \(count + 1) is larger than 255") }
            inNumber = true
        } else if b == 32 || b == 9 || b == 34 {  // spaces, and quotes some CSV writers add
            if inNumber {
                guard count < FaceSet.pixelsPerImage else { throw DataError("more than \(FaceSet.pixelsPerImage) pixels") }
                out[count] = UInt8(value)
                count += 1
                value = 0
                inNumber = false
            }
        } else {
            throw DataError("pixels must be space-separated integers 0..255; found '\(String(UnicodeScalar(b)))' after \(count) values")
        }
    }
    if inNumber {
        guard count < FaceSet.pixelsPerImage else { throw DataError("more than \(FaceSet.pixelsPerImage) pixels") }
        out[count] = UInt8(value)
        count += 1
    }
    guard count == FaceSet.pixelsPerImage else {
        throw DataError("expected \(FaceSet.pixelsPerImage) pixels (48x48), found \(count)")
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let chars = Set(set.unicodeScalars)
        var s = Substring(self)
        while let f = s.unicodeScalars.first, chars.contains(f) { s = Substring(s.unicodeScalars.dropFirst()) }
        while let l = s.unicodeScalars.last, chars.contains(l) { s = Substring(s.unicodeScalars.dropLast()) }
        return String(s)
    }
}
