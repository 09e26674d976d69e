// libFuzzer target: the FER2013 CSV reader (Training's loadFER2013, plain and gzip, with and
// without --skip-bad-rows). Built by Tools/fuzz/run.sh csv as one module with FER2013.swift
// and Runtime's sources. The input is written to a file in /dev/shm (the reader streams files).
// Invariants: a rejected file gives a message naming it; an accepted one holds 48x48 faces
// with labels 0...6 (pixels.count == 2304 * labels.count in every split).

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
    for skip in [false, true] {
        do {
            let d = try loadFER2013(path: fuzzPath, options: LoadOptions(skipBadRows: skip))
            for split in Split.allCases {
                let set = d[split]
                if set.pixels.count != set.count * FaceSet.pixelsPerImage { fail("split \(split) has \(set.pixels.count) pixels for \(set.count) faces") }
                if set.labels.contains(where: { $0 > 6 }) { fail("a label outside 0...6") }
            }
        } catch {
            if !"\(error)".contains(fuzzPath) { fail("the error does not name the file: \(error)") }
        }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
