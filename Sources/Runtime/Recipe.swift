// Kernels of the stronger training recipe and of test-time augmentation (label smoothing is a
// parameter of the cross-entropy in Softmax.swift):
//   - SGD with weight decay (PyTorch's, added to the gradient, or decoupled as in SGDW);
//   - test-time augmentation: the views of each face (crops, mirrored or not) as one batch,
//     and the mean of the class probabilities over each face's views.
// A test-time-augmentation plan runs its model on n*V samples for n faces: the buffers between
// the two TTA steps have `views` = V (BufferDesc), and the executor runs the steps between
// them with batch n*V.

import CKernels

/// One view of a face: the crop's top-left corner and whether it is mirrored left-right.
public struct TTAView: Sendable, Hashable, Codable {
    public var row: Int, col: Int, flip: Bool
    public init(row: Int, col: Int, flip: Bool) { self.row = row; self.col = col; self.flip = flip }
}

/// The views a TTA plan takes of each [channels, faceSide, faceSide] face, each
/// [channels, side, side].
public struct TTAViews: Sendable, Hashable, Codable {
    public var channels: Int, faceSide: Int, side: Int
    public var views: [TTAView]
    public init(channels: Int, faceSide: Int, side: Int, views: [TTAView]) {
        self.channels = channels; self.faceSide = faceSide; self.side = side; self.views = views
    }
}

/// SGD with weight decay, then Keras' momentum step as `sgdUpdate`:
///   coupled (PyTorch's weight_decay): g' = g + wd * p; v = momentum*v - lr*g'; p += v
///       (Nesterov: p += momentum*v - lr*g');
///   decoupled (SGDW): the same step with g, then p -= lr * wd * p_before.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func sgdWeightDecayUpdate<T: BLASReal>(
    _ p: UnsafeMutablePointer<T>,   // (count) parameter
    _ v: UnsafeMutablePointer<T>,   // (count) velocity
    _ g: UnsafePointer<T>,          // (count) gradient
    count: Int, lr: T, momentum: T, nesterov: Bool, weightDecay: T, decoupled: Bool,
    threads: Int = 1   // elementwise: any split of the range gives the same bits
) {
    let parts = count >= 1 << 16 ? max(1, threads) : 1
    if T.self == Float.self {
        // The C loop (fk_sgd_wd, the same expression without contraction): this generic closure
        // ran unspecialized, 3% of a vgg_k step.
        let pf = UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
        let vf = UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self)
        let gf = UnsafeRawPointer(g).assumingMemoryBound(to: Float.self)
        let (lrF, mF, wdF) = (Float(lr), Float(momentum), Float(weightDecay))
        parallelFor(parts) { part in
            let r = splitRange(count, parts: parts, part)
            fk_sgd_wd(pf, vf, gf, r.lowerBound, r.upperBound, lrF, mF, nesterov ? 1 : 0, wdF, decoupled ? 1 : 0)
        }
        return
    }
    parallelFor(parts) { part in
        for i in splitRange(count, parts: parts, part) {
            let p0 = p[i]
            let gi = decoupled ? g[i] : g[i] + weightDecay * p0
            var step: T
            if momentum == 0 {
                step = -lr * gi
            } else {
                let vi = momentum * v[i] - lr * gi
                v[i] = vi
                step = nesterov ? momentum * vi - lr * gi : vi
            }
            if decoupled { step -= lr * weightDecay * p0 }
            p[i] = p0 + step
        }
    }
}

/// y[f * V + v] = view v of face f: rows row..<row+side, columns col..<col+side (mirrored when
/// `flip`), every channel.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func ttaViewsForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N*V, C, S, S)
    _ x: UnsafePointer<T>,          // (N, C, F, F)
    n: Int, _ t: TTAViews
) {
    let F = t.faceSide, S = t.side, C = t.channels, V = t.views.count
    for f in 0..<n {
        for (vi, view) in t.views.enumerated() {
            for ch in 0..<C {
                let src = x + (f * C + ch) * F * F
                let dst = y + ((f * V + vi) * C + ch) * S * S
                for r in 0..<S {
                    let sr = src + (view.row + r) * F + view.col, dr = dst + r * S
                    if view.flip {
                        for c in 0..<S { dr[c] = sr[S - 1 - c] }
                    } else {
                        for c in 0..<S { dr[c] = sr[c] }
                    }
                }
            }
        }
    }
}

/// y[f, :] = mean over v of softmax(x[f * V + v, :]) (of x itself when `probabilities`),
/// accumulated in Double.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func ttaMeanForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, K)
    _ x: UnsafePointer<T>,          // (N*V, K)
    n: Int, classes: Int, views: Int, probabilities: Bool
) {
    var p = [T](repeating: 0, count: classes), sum = [Double](repeating: 0, count: classes)
    p.withUnsafeMutableBufferPointer { p in
        for f in 0..<n {
            for k in 0..<classes { sum[k] = 0 }
            for v in 0..<views {
                let row = x + (f * views + v) * classes
                if probabilities {
                    for k in 0..<classes { sum[k] += Double(row[k]) }
                } else {
                    softmaxForward(p.baseAddress!, row, n: 1, classes: classes)
                    for k in 0..<classes { sum[k] += Double(p[k]) }
                }
            }
            for k in 0..<classes { y[f * classes + k] = T(sum[k] / Double(views)) }
        }
    }
}
