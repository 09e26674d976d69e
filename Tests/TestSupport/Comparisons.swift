// Comparing tensors that two correct computations round differently (another OpenBLAS kernel,
// another summation order): the largest difference relative to the tensor's largest value.

/// max |a - b| / max |a| (the absolute difference when a is all zeros; infinity when the
/// sizes differ or b is missing).
public func largestRelativeDifference(_ a: [Float], _ b: [Float]?) -> Double {
    guard let b, a.count == b.count else { return .infinity }
    let scale = a.map { abs(Double($0)) }.max() ?? 0
    let diff = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
    return scale > 0 ? diff / scale : diff
}
