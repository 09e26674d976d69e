// Mixup (Zhang, Cisse, Dauphin and Lopez-Paz 2018, "mixup: Beyond Empirical Risk Minimization"):
// each training batch draws one weight l from Beta(a, a) and a random pairing of its images;
// every image becomes l x + (1 - l) x' of itself and its partner (both already augmented), and
// its target l q(y) + (1 - l) q(y'), q being the label smoothing's target ((1 - e) on the label,
// e / K on every class). The draws are keyed by (seed, epoch, batch) like the augmentation's,
// so a resumed run mixes the same pairs with the same weight.

import Foundation
import Passes

/// One batch's mixup draw: the weight of each image itself and the partner of each image.
public struct MixupDraw: Equatable, Sendable {
    public var lambda: Double
    public var partner: [Int]

    public init(lambda: Double, partner: [Int]) {
        self.lambda = lambda
        self.partner = partner
    }

    /// Draws l ~ Beta(alpha, alpha) as X / (X + Y) of two Gamma(alpha) draws, then the pairing
    /// as a Fisher-Yates shuffle of 0..<count (an image may draw itself), in that order.
    public init(count: Int, alpha: Double, seed: UInt64) {
        precondition(alpha > 0 && count >= 0)
        var g = SplitMix64(seed: seed)
        let lx = logGamma(alpha, &g), ly = logGamma(alpha, &g)
        lambda = 1 / (1 + exp(ly - lx))
        partner = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { partner.swapAt(i, g.below(i + 1)) }
        }
    }
}

/// The logarithm of a Gamma(shape, 1) draw: Marsaglia and Tsang's method (2000) for shape >= 1;
/// below 1, log Gamma(shape + 1) + log(U) / shape, in logarithms so that small shapes (whose
/// draws underflow a Double) still give a ratio.
func logGamma(_ shape: Double, _ g: inout SplitMix64) -> Double {
    if shape < 1 {
        let u = max(g.unit(), 1e-300)
        return logGamma(shape + 1, &g) + log(u) / shape
    }
    let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
    while true {
        let z = g.normal()
        let v = 1 + c * z
        guard v > 0 else { continue }
        let v3 = v * v * v, u = max(g.unit(), 1e-300)
        if log(u) < 0.5 * z * z + d - d * v3 + d * log(v3) { return log(d) + log(v3) }
    }
}

/// Mixes a filled batch in place: `x` holds `labels.count` images of `pixels` floats each; on
/// return they are mixed, `targets` holds labels.count x classes soft targets, and the result
/// is the label each image is scored against for the training accuracy (the one with the
/// larger weight: its own when lambda >= 0.5, its partner's otherwise).
@discardableResult
public func applyMixup(_ draw: MixupDraw, x: inout [Float], labels: [Int32], targets: inout [Float],
                       pixels: Int, classes: Int, smoothing: Double) -> [Int32] {
    applyMixup(draw, x: &x, labels: labels, own: ownTargets(labels: labels, classes: classes, smoothing: smoothing),
               targets: &targets, pixels: pixels, classes: classes)
}

/// The same with each image's own target given (`ownTargets`: the smoothed label, and the
/// teacher's share when distilling): image k's target is l own(k) + (1 - l) own(partner(k)).
@discardableResult
public func applyMixup(_ draw: MixupDraw, x: inout [Float], labels: [Int32], own: [Double], targets: inout [Float],
                       pixels: Int, classes: Int) -> [Int32] {
    let n = labels.count
    precondition(draw.partner.count == n && x.count == n * pixels && classes > 0 && own.count == n * classes)
    let l = draw.lambda
    let a = Float(l), b = Float(1 - l)
    let original = x
    original.withUnsafeBufferPointer { src in
        x.withUnsafeMutableBufferPointer { dst in
            for k in 0..<n {
                let p = draw.partner[k]
                for i in 0..<pixels { dst[k * pixels + i] = a * src[k * pixels + i] + b * src[p * pixels + i] }
            }
        }
    }
    targets = [Float](repeating: 0, count: n * classes)
    for k in 0..<n {
        let p = draw.partner[k]
        for j in 0..<classes {
            targets[k * classes + j] = Float(l * own[k * classes + j] + (1 - l) * own[p * classes + j])
        }
    }
    return l >= 0.5 ? labels : draw.partner.map { labels[$0] }
}
