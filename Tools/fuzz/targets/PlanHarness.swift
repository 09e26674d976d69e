// libFuzzer target: the .plan loader and validator (Runtime's decodePlanFile, LoadedPlan,
// Session). Built by Tools/fuzz/run.sh plan as one module with Runtime's sources.
// Invariants (a violation aborts, which libFuzzer reports as a crash):
//   - a rejected file gives a non-empty message;
//   - an accepted plan re-encodes to a file that is accepted again;
//   - a small accepted classifier runs one image to probabilities that sum to 1, or refuses
//     it with an error (never a trap, hang or memory error: ASan and -timeout catch those).

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlan(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let file: PlanFile
    do { file = try decodePlanFile(bytes) } catch {
        if error.description.isEmpty { fail("empty error message") }
        return 0
    }
    do { _ = try decodePlanFile(encodePlan(file.plan)) } catch { fail("re-encoded plan rejected: \(error)") }
    guard let model = try? LoadedPlan(plan: file.plan, file: file) else { return 0 }
    // Run only what is cheap: a few MB and few steps (a valid 3M-parameter plan would be slow,
    // not wrong).
    guard executorBytes(file.plan, elementSize: 4) <= 16 << 20, file.plan.steps.count <= 64,
          model.inputElements <= 1 << 16 else { return 0 }
    guard let session = try? Session(model) else { return 0 }
    let image = [Float](repeating: 0.5, count: model.inputElements)
    if let p = try? session.predict(images: image), let row = p.first {
        let sum = row.reduce(0, +)
        if row.allSatisfy({ $0.isFinite }) && abs(sum - 1) > 1e-3 { fail("probabilities sum to \(sum)") }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
