// Weights stored as IEEE half (`fergc compile --weights-dtype f16`, plan format 1.1): the PARM
// section's layout with 2-byte values (docs/plan-format.md). Loading widens them to f32, so
// the executor and every kernel see f32 as always; a plan compiled with f16 weights holds the
// rounded values in memory too (`roundedToHalf`), so it computes what its file will.

/// `parameters` with every value rounded to the nearest half (overflow: ±infinity).
public func roundedToHalf(_ parameters: [String: [Float]]) -> [String: [Float]] {
    parameters.mapValues { $0.map { Float(Float16($0)) } }
}

/// The largest magnitude a half can hold.
public let halfMax = Float(Float16.greatestFiniteMagnitude)

