// libFuzzer target for the frontend. Each input is used twice:
//   1. as graph-language text, compiled as is;
//   2. as a mutation program applied to one of the model files (Models/*.graph): its first
//      byte picks the model, the rest drive truncations, deletions, duplicated and swapped
//      lines, byte noise and nasty tokens (see Mutator.swift).
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
//   - a rejected input gives a diagnostic rendered "<file>:<line>:<col>: error: ..." with the
//     line and column inside the text (notes too);
//   - an accepted input gives a graph that verifies and whose printed text compiles back to
//     the same printed text (the round trip).
// Crashes, overflow traps and hangs (-timeout) inside the frontend are caught by libFuzzer.
//
// Built by Tools/fuzz/run.sh as one module with GraphIR and Frontend sources (Frontend's
// `import GraphIR` is guarded by `#if canImport(GraphIR)`).

#if canImport(Glibc)
import Glibc
#endif

/// The seed models: (file name, text), read once from $FERGC_FUZZ_MODELS (default "Models").
let seedModels: [(String, [UInt8])] = {
    let dir = String(validatingCString: getenv("FERGC_FUZZ_MODELS") ?? strdup("Models")) ?? "Models"
    var result: [(String, [UInt8])] = []
    for name in ["tiny", "vgg_scratch", "vgg_tuned"] {
        let path = "\(dir)/\(name).graph"
        if case .success(let bytes) = Frontend.readFile(path) { result.append(("\(name).graph", bytes)) }
    }
    if result.isEmpty { fputs("fuzz: no seed models found in \(dir)\n", stderr) }
    return result
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrontend(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    check(String(decoding: bytes, as: UTF8.self), file: "input.graph")
    if let first = bytes.first, !seedModels.isEmpty {
        let (name, seed) = seedModels[Int(first) % seedModels.count]
        let mutated = mutate(seed, program: bytes.dropFirst())
        check(String(decoding: mutated, as: UTF8.self), file: name)
    }
    return 0
}

func fail(_ message: String, _ text: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n--- input ---\n\(text)\n--- end ---\n", stderr)
    abort()
}

func check(_ text: String, file: String) {
    let graph: Graph
    do throws(Diagnostic) {
        graph = try Frontend.compile(source: text, file: file)
    } catch {
        checkDiagnostic(error, text: text, file: file, severity: "error")
        return
    }
    do throws(VerifierError) {
        try graph.verify()
    } catch {
        fail("accepted graph fails verification: \(error)", text)
    }
    let printed = graph.printed()
    do throws(Diagnostic) {
        let again = try Frontend.compile(source: printed, file: "printed.graph")
        if again.printed() != printed { fail("round trip changed the printed text:\n\(again.printed())", printed) }
    } catch {
        fail("printed graph is rejected:\n\(error)", printed)
    }
}

/// The rendered diagnostic starts with "<file>:<line>:<col>: error:" and points inside the text.
func checkDiagnostic(_ d: Diagnostic, text: String, file: String, severity: String, parent: String? = nil) {
    let rendered = parent ?? d.description
    let prefix = "\(file):\(d.line):\(d.column): \(severity): "
    if parent == nil, !rendered.hasPrefix(prefix) { fail("diagnostic does not start with '\(prefix)':\n\(rendered)", text) }
    if parent != nil, !rendered.contains("\n" + prefix + d.message + "\n") { fail("note '\(prefix)' is not rendered:\n\(rendered)", text) }
    // Lines as the frontend counts them: split at \n, columns in Unicode scalars.
    var lengths: [Int] = [0]
    for s in text.unicodeScalars {
        if s == "\n" { lengths.append(0) } else { lengths[lengths.count - 1] += 1 }
    }
    guard d.line >= 1, d.line <= lengths.count else { fail("line \(d.line) out of range 1...\(lengths.count):\n\(rendered)", text) }
    guard d.column >= 1, d.column <= lengths[d.line - 1] + 1 else {
        fail("column \(d.column) out of range 1...\(lengths[d.line - 1] + 1):\n\(rendered)", text)
    }
    if d.message.isEmpty { fail("empty message", text) }
    for note in d.notes { checkDiagnostic(note, text: text, file: file, severity: "note", parent: rendered) }
}
