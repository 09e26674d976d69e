// libFuzzer target: the FER2013 CSV reader (Training's loadFER2013, plain and gzip, with and
// without --skip-bad-rows). Built by Tools/fuzz/run.sh csv as one module with FER2013.swift
// and the Runtime module. The input is written to a file in /dev/shm (the reader streams files)
// and read twice: strictly with the default 64 KiB reads, and with --skip-bad-rows in reads of
// 1...64 bytes (the size from the input's length), so read boundaries fall inside lines, CRLF
// pairs and gzip members.
// Invariants: a rejected file gives a message naming it; an accepted one holds 48x48 faces
// with labels 0...6 (pixels.count == 2304 * labels.count in every split); a file accepted
// strictly reads the same with --skip-bad-rows (nothing skipped) in small reads.

#if canImport(Glibc)
import Glibc
#endif

let fuzzPath = "/dev/shm/fergc-fuzz-csv-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let fd = open(fuzzPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { fail("cannot create \(fuzzPath)") }
    var written = 0
    while written < size {
        let n = write(fd, data + written, size - written)
        if n <= 0 { close(fd); fail("cannot write \(fuzzPath)") }
        written += n
    }
    close(fd)
    var strict: FERData?
    for skip in [false, true] {
        do {
            let d = try loadFER2013(path: fuzzPath, options: LoadOptions(skipBadRows: skip), chunk: skip ? 1 + size % 64 : 1 << 16)
            for split in Split.allCases {
                let set = d[split]
                if set.pixels.count != set.count * FaceSet.pixelsPerImage { fail("split \(split) has \(set.pixels.count) pixels for \(set.count) faces") }
                if set.labels.contains(where: { $0 > 6 }) { fail("a label outside 0...6") }
            }
            if !skip { strict = d }
            if skip, let strict {
                if d.skippedRows != 0 { fail("a strictly accepted file has \(d.skippedRows) bad rows with --skip-bad-rows") }
                for split in Split.allCases where d[split].labels != strict[split].labels || d[split].pixels != strict[split].pixels {
                    fail("split \(split) differs between 64 KiB reads and reads of \(1 + size % 64) bytes")
                }
            }
        } catch {
            if !"\(error)".contains(fuzzPath) { fail("the error does not name the file: \(error)") }
            if skip, strict != nil { fail("a strictly accepted file is rejected in reads of \(1 + size % 64) bytes: \(error)") }
        }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
