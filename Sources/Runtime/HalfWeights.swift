// Weights stored as IEEE half (`fergc compile --weights-dtype f16`, plan format 1.1 and 1.2):
// the PARM section's layout with 2-byte values (docs/plan-format.md). Loading widens them to
// f32, so the executor and every kernel see f32 as always; a plan compiled with f16 weights holds
// the rounded values in memory too (`roundedToHalf`), so it computes what its file will.
//
// A tensor with a value beyond the half range (a batchnorm running variance of 10^6, say) stays
// f32 in an f16 plan: the file then says per tensor how it is stored (format 1.2). Which
// tensors are halves follows from the values alone (`isHalfExact`), so equal plans still give
// equal bytes.

/// `parameters` with every value rounded to the nearest half, except the tensors holding a value
/// beyond the half range, which keep their f32 values (`halfKeptTensors` lists them).
public func roundedToHalf(_ parameters: [String: [Float]]) -> [String: [Float]] {
    parameters.mapValues { fitsHalf($0) ? $0.map { Float(Float16($0)) } : $0 }
}

/// Whether rounding `values` to half keeps them finite (every magnitude at most `halfMax`).
func fitsHalf(_ values: [Float]) -> Bool {
    values.allSatisfy { abs($0) <= halfMax }
}

/// Whether every value is exactly a half (same bits after the round trip): such a tensor is
/// stored in 2 bytes per value in an f16 plan, any other in 4.
public func isHalfExact(_ values: [Float]) -> Bool {
    values.allSatisfy(isHalf)
}

/// Whether `v` is exactly a half: the same bits after the round trip through Float16.
private func isHalf(_ v: Float) -> Bool { Float(Float16(v)).bitPattern == v.bitPattern }

/// The tensors an f16 plan stores as f32 (values that are not halves), by name, sorted; with
/// the first such value of each, for messages.
public func halfKeptTensors(_ parameters: [String: [Float]]) -> [(name: String, value: Float)] {
    parameters.compactMap { name, values -> (name: String, value: Float)? in
        guard let v = values.first(where: { !isHalf($0) }) else { return nil }
        return (name, v)
    }.sorted { $0.name < $1.name }
}

/// The largest magnitude a half can hold.
public let halfMax = Float(Float16.greatestFiniteMagnitude)
