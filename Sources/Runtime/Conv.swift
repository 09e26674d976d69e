// 2-d convolution, NCHW activations and OIHW weights, zero padding (TensorFlow 'same': padTop /
// padLeft zeros before, the rest implied by the output size).
//
// The fast path lowers each sample to a column matrix (im2col) and calls gemm:
//   col[C*KH*KW, OH*OW]  (row r = (c, kh, kw), column p = (oh, ow))
//   y_n[O, OH*OW]  = w[O, C*KH*KW] * col + b
//   dcol           = w^T * dy_n, then col2im scatters it back into dx_n
//   dw[O, C*KH*KW] = sum_n dy_n * col_n^T
// `conv2dForwardNaive` is the obviously-correct direct loop the tests compare against.
// Every im2col kernel takes an optional `workspace` of `im2colCount(g)` elements; without one
// it allocates its own (the executor always passes its shared workspace).

extension ConvGeometry {
    /// The sizes the im2col kernels index by: output positions per channel (P = OH*OW, the
    /// column matrix's columns), elements of a receptive field (K = C*KH*KW, its rows), and the
    /// elements of one sample of x and of y.
    @inline(__always)
    var loweredSizes: (P: Int, K: Int, xStride: Int, yStride: Int) {
        let p = outHeight * outWidth
        return (p, inChannels * kernelHeight * kernelWidth, inChannels * inHeight * inWidth, outChannels * p)
    }
}

/// Elements of the im2col scratch matrix for one sample.
public func im2colCount(_ g: ConvGeometry) -> Int {
    g.inChannels * g.kernelHeight * g.kernelWidth * g.outHeight * g.outWidth
}

/// col (C*KH*KW, OH*OW) <- x (C, H, W), zeros where the window leaves the input.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func im2col<T: BLASReal>(_ col: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, _ g: ConvGeometry) {
    let P = g.outHeight * g.outWidth
    var r = 0
    for c in 0..<g.inChannels {
        let xc = x + c * g.inHeight * g.inWidth
        for kh in 0..<g.kernelHeight {
            for kw in 0..<g.kernelWidth {
                let row = col + r * P
                for oh in 0..<g.outHeight {
                    let ih = oh * g.stride - g.padTop + kh
                    let rowOut = row + oh * g.outWidth
                    if ih < 0 || ih >= g.inHeight {
                        for ow in 0..<g.outWidth { rowOut[ow] = 0 }
                        continue
                    }
                    let xr = xc + ih * g.inWidth
                    for ow in 0..<g.outWidth {
                        let iw = ow * g.stride - g.padLeft + kw
                        rowOut[ow] = (iw >= 0 && iw < g.inWidth) ? xr[iw] : 0
                    }
                }
                r += 1
            }
        }
    }
}

/// dx (C, H, W) += scatter of col (C*KH*KW, OH*OW); the inverse lowering of `im2col`.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func col2imAccumulate<T: BLASReal>(_ dx: UnsafeMutablePointer<T>, _ col: UnsafePointer<T>, _ g: ConvGeometry) {
    let P = g.outHeight * g.outWidth
    var r = 0
    for c in 0..<g.inChannels {
        let dxc = dx + c * g.inHeight * g.inWidth
        for kh in 0..<g.kernelHeight {
            for kw in 0..<g.kernelWidth {
                let row = col + r * P
                for oh in 0..<g.outHeight {
                    let ih = oh * g.stride - g.padTop + kh
                    if ih < 0 || ih >= g.inHeight { continue }
                    let dxr = dxc + ih * g.inWidth
                    let rowIn = row + oh * g.outWidth
                    for ow in 0..<g.outWidth {
                        let iw = ow * g.stride - g.padLeft + kw
                        if iw >= 0 && iw < g.inWidth { dxr[iw] += rowIn[ow] }
                    }
                }
                r += 1
            }
        }
    }
}

/// Runs `body` with `workspace` or, when nil, a temporary buffer of `count` elements.
@inline(__always)
func withWorkspace<T: BLASReal, R>(_ workspace: UnsafeMutablePointer<T>?, count: Int,
                                   _ body: (UnsafeMutablePointer<T>) -> R) -> R {
    if let workspace { return body(workspace) }
    let tmp = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
    defer { tmp.deallocate() }
    return body(tmp)
}

/// y = conv(x, w) + b.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func conv2dForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, O, OH, OW)
    _ x: UnsafePointer<T>,          // (N, C, H, W)
    _ w: UnsafePointer<T>,          // (O, C, KH, KW)
    _ b: UnsafePointer<T>?,         // (O) or nil
    n: Int, _ g: ConvGeometry,
    workspace: UnsafeMutablePointer<T>? = nil  // (C*KH*KW, OH*OW)
) {
    let (P, K, xStride, yStride) = g.loweredSizes
    withWorkspace(workspace, count: im2colCount(g)) { col in
        for s in 0..<n {
            let ys = y + s * yStride
            im2col(col, x + s * xStride, g)
            T.gemm(transA: false, transB: false, m: g.outChannels, n: P, k: K,
                   alpha: 1, a: w, lda: K, b: UnsafePointer(col), ldb: P, beta: 0, c: ys, ldc: P)
            if let b {
                for o in 0..<g.outChannels {
                    let bo = b[o]
                    let yo = ys + o * P
                    for p in 0..<P { yo[p] += bo }
                }
            }
        }
    }
}

/// dx = the gradient of sum(dy * conv(x, w)) with respect to x (overwrites dx).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func conv2dBackwardInput<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (N, C, H, W)
    _ dy: UnsafePointer<T>,         // (N, O, OH, OW)
    _ w: UnsafePointer<T>,          // (O, C, KH, KW)
    n: Int, _ g: ConvGeometry,
    workspace: UnsafeMutablePointer<T>? = nil  // (C*KH*KW, OH*OW)
) {
    let (P, K, xStride, yStride) = g.loweredSizes
    dx.update(repeating: 0, count: n * xStride)
    withWorkspace(workspace, count: im2colCount(g)) { col in
        for s in 0..<n {
            T.gemm(transA: true, transB: false, m: K, n: P, k: g.outChannels,
                   alpha: 1, a: w, lda: K, b: dy + s * yStride, ldb: P, beta: 0, c: col, ldc: P)
            col2imAccumulate(dx + s * xStride, UnsafePointer(col), g)
        }
    }
}

/// dw = the gradient of sum(dy * conv(x, w)) with respect to w, summed over the batch
/// (overwrites dw).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func conv2dBackwardWeight<T: BLASReal>(
    _ dw: UnsafeMutablePointer<T>,  // (O, C, KH, KW)
    _ dy: UnsafePointer<T>,         // (N, O, OH, OW)
    _ x: UnsafePointer<T>,          // (N, C, H, W)
    n: Int, _ g: ConvGeometry,
    workspace: UnsafeMutablePointer<T>? = nil  // (C*KH*KW, OH*OW)
) {
    let (P, K, xStride, yStride) = g.loweredSizes
    dw.update(repeating: 0, count: g.outChannels * K)
    withWorkspace(workspace, count: im2colCount(g)) { col in
        for s in 0..<n {
            im2col(col, x + s * xStride, g)
            T.gemm(transA: false, transB: true, m: g.outChannels, n: K, k: P,
                   alpha: 1, a: dy + s * yStride, lda: P, b: UnsafePointer(col), ldb: P,
                   beta: 1, c: dw, ldc: K)
        }
    }
}

/// db[c] = sum over N and spatial of dy[n, c, :] (the bias gradient of conv and dense),
/// accumulated in Double.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func biasBackward<T: BLASReal>(
    _ db: UnsafeMutablePointer<T>,  // (C)
    _ dy: UnsafePointer<T>,         // (N, C, spatial)
    n: Int, channels: Int, spatial: Int
) {
    for c in 0..<channels {
        var sum = 0.0
        for s in 0..<n {
            let row = dy + (s * channels + c) * spatial
            for i in 0..<spatial { sum += Double(row[i]) }
        }
        db[c] = T(sum)
    }
}

/// The direct seven-loop convolution: slow, obviously correct, the reference for `conv2dForward`.
public func conv2dForwardNaive<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, O, OH, OW)
    _ x: UnsafePointer<T>,          // (N, C, H, W)
    _ w: UnsafePointer<T>,          // (O, C, KH, KW)
    _ b: UnsafePointer<T>?,         // (O) or nil
    n: Int, _ g: ConvGeometry
) {
    for s in 0..<n {
        for o in 0..<g.outChannels {
            for oh in 0..<g.outHeight {
                for ow in 0..<g.outWidth {
                    var acc = 0.0
                    for c in 0..<g.inChannels {
                        for kh in 0..<g.kernelHeight {
                            let ih = oh * g.stride - g.padTop + kh
                            if ih < 0 || ih >= g.inHeight { continue }
                            for kw in 0..<g.kernelWidth {
                                let iw = ow * g.stride - g.padLeft + kw
                                if iw < 0 || iw >= g.inWidth { continue }
                                let xv = x[((s * g.inChannels + c) * g.inHeight + ih) * g.inWidth + iw]
                                let wv = w[((o * g.inChannels + c) * g.kernelHeight + kh) * g.kernelWidth + kw]
                                acc += Double(xv) * Double(wv)
                            }
                        }
                    }
                    if let b { acc += Double(b[o]) }
                    y[((s * g.outChannels + o) * g.outHeight + oh) * g.outWidth + ow] = T(acc)
                }
            }
        }
    }
}
