// Pointwise activations. `count` is the total number of elements (batch included). Each may
// run in place (y == x, dx == dy).

/// y = max(x, 0).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func reluForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (count)
    _ x: UnsafePointer<T>,          // (count)
    count: Int
) {
    for i in 0..<count { y[i] = x[i] > 0 ? x[i] : 0 }
}

/// dx = dy where y > 0, else 0 (y the relu output; the subgradient at 0 is 0).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func reluBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (count)
    _ dy: UnsafePointer<T>,         // (count)
    _ y: UnsafePointer<T>,          // (count)
    count: Int
) {
    for i in 0..<count { dx[i] = y[i] > 0 ? dy[i] : 0 }
}

/// y = x if x > 0 else alpha * x.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func leakyReluForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (count)
    _ x: UnsafePointer<T>,          // (count)
    count: Int, alpha: T
) {
    for i in 0..<count { y[i] = x[i] > 0 ? x[i] : alpha * x[i] }
}

/// dx = dy if x > 0 else alpha * dy.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func leakyReluBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (count)
    _ dy: UnsafePointer<T>,         // (count)
    _ x: UnsafePointer<T>,          // (count)
    count: Int, alpha: T
) {
    for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : alpha * dy[i] }
}
