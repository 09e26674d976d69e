// Checks on values where they enter fergc (weights, checkpoints, plan parameters, inputs):
// a NaN or an infinity is refused with the tensor's name instead of silently flowing through
// ReLU (which maps NaN to 0) into predictions, checkpoints and shipped plans.

/// Why a tensor may not enter a run or a plan: a NaN or an infinity (the first one, by index),
/// or a negative batchnorm running variance. nil when the values are fine.
public func nonFiniteProblem(name: String, _ values: [Float]) -> String? {
    if let i = values.firstIndex(where: { !$0.isFinite }) {
        return "tensor '\(name)' holds a non-finite value (\(values[i]) at index \(i))"
    }
    if name.hasSuffix("running_var"), let i = values.firstIndex(where: { $0 < 0 }) {
        return "tensor '\(name)' holds a negative variance (\(values[i]) at index \(i))"
    }
    return nil
}

/// The first non-finite value of `values`: (index, value), or nil when all are finite.
public func firstNonFinite(_ values: UnsafeBufferPointer<Float>) -> (index: Int, value: Float)? {
    for i in values.indices where !values[i].isFinite { return (i, values[i]) }
    return nil
}
