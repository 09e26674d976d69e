// libFuzzer target: the .onnx reader (the hand-written protobuf decoder of Interop), its
// encoder, and the importer to GraphIR (what `fergc import` runs). Built by Tools/fuzz/run.sh
// onnx with the Runtime, GraphIR and Interop modules.
// Invariants: a rejected file gives a ProtobufError with a message and an offset inside the
// input; an accepted model re-encodes to bytes that, when they decode, encode to the same bytes
// (the canonical encoding is a fixed point); an imported model's graph verifies and every
// weight has as many values as its shape says; an import error has a message.

import GraphIR
import Interop
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let model: ONNXModel
    do throws(ProtobufError) {
        model = try decodeONNXModel(bytes)
    } catch {
        if error.message.isEmpty { fail("empty error message") }
        if error.offset < 0 || error.offset > size { fail("offset \(error.offset) outside the \(size)-byte input: \(error)") }
        return 0
    }
    let encoded = encodeONNXModel(model)
    if let again = try? decodeONNXModel(encoded), encodeONNXModel(again) != encoded {
        fail("the encoding of a decoded model is not a fixed point")
    }
    do throws(ImportError) {
        let imported = try importONNX(model)
        do throws(VerifierError) {
            try imported.graph.verify()
        } catch {
            fail("an imported graph fails verification: \(error)")
        }
        for w in imported.weights {
            var n = 1
            for d in w.shape {
                let (r, overflow) = n.multipliedReportingOverflow(by: d)
                if overflow || d < 0 { fail("weight \(w.name) has the shape \(w.shape)") }
                n = r
            }
            if w.values.count != n { fail("weight \(w.name) has \(w.values.count) values for shape \(w.shape)") }
        }
    } catch {
        if error.message.isEmpty { fail("empty import error") }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
