// libFuzzer target: the PGM decoder (Training's decodePGM, used by fergc predict). Built by
// Tools/fuzz/run.sh pgm as one module with PGM.swift.
// Invariants: a rejected image gives a non-empty message; an accepted one is exactly 48x48
// (the size asked for) whatever its header said.

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPGM(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let pixels = try decodePGM(bytes, width: 48, height: 48)
        if pixels.count != 48 * 48 { fail("decoded \(pixels.count) pixels for 48x48") }
    } catch {
        if error.message.isEmpty { fail("empty error message") }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
