// libFuzzer target: the .npz / .npy readers (NumPyIO.readNPZ, readNPY). Built by
// Tools/fuzz/run.sh npz as one module with NumPyIO's and Runtime's sources.
// Invariants: a rejected archive gives a non-empty message; an accepted one re-written with
// writeNPZ reads back to the same names, dtypes, shapes and bytes. The decompressed-size cap
// (64 MB) is the one the CLI applies per model; -rss_limit_mb catches anything bigger.

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPZ(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let arrays: [(name: String, array: NDArray)]
    do { arrays = try NumPyIO.readNPZ(bytes, file: "fuzz.npz", maxBytes: 64 << 20) } catch {
        if error.description.isEmpty { fail("empty error message") }
        return 0
    }
    for compressed in [false, true] {
        let again: [(name: String, array: NDArray)]
        do { again = try NumPyIO.readNPZ(NumPyIO.writeNPZ(arrays, compressed: compressed), file: "again.npz") } catch {
            fail("re-written archive rejected: \(error)")
        }
        guard again.count == arrays.count else { fail("round trip changed the member count") }
        for (a, b) in zip(arrays, again) where a.name != b.name || a.array.dtype != b.array.dtype || a.array.shape != b.array.shape || a.array.data != b.array.data {
            fail("round trip changed member '\(a.name)'")
        }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
