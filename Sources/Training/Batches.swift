// Turning a FaceSet into batches: a seeded shuffle per epoch, pixel scaling, and optional
// augmentation (horizontal flips, shifts with zeros entering at the edges), each image's
// choices drawn from a generator seeded by (seed, epoch, position) so a resumed run sees the
// same batches.

import GraphIR
import Passes

/// The order of the training images in an epoch: a Fisher-Yates shuffle seeded by (seed, epoch).
public func epochOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
    var order = Array(0..<count)
    var rng = SplitMix64(seed: mixSeed(seed, 0x5348_5546, UInt64(epoch)))
    if count > 1 {
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, rng.below(i + 1))
        }
    }
    return order
}

/// Fills `x` ([n, 1, 48, 48], floats) and `labels` for the images `indices` of `set`.
/// `augment` applies only when given a generator seed.
public func fillBatch(
    x: inout [Float], labels: inout [Int32], set: FaceSet, indices: ArraySlice<Int>,
    scale: Float, augmentation: Augmentation, augmentSeed: UInt64?
) {
    let side = FaceSet.side, count = FaceSet.pixelsPerImage
    x.removeAll(keepingCapacity: true)
    labels.removeAll(keepingCapacity: true)
    set.pixels.withUnsafeBufferPointer { pixels in
        for (k, i) in indices.enumerated() {
            labels.append(Int32(set.labels[i]))
            let image = pixels.baseAddress! + i * count
            guard let seed = augmentSeed, !augmentation.isNone else {
                for p in 0..<count { x.append(Float(image[p]) * scale) }
                continue
            }
            var rng = SplitMix64(seed: mixSeed(seed, UInt64(k)))
            let flip = augmentation.horizontalFlip && rng.next() & 1 == 1
            let maxShift = Int((augmentation.shift * Double(side)).rounded(.down))
            let dy = maxShift > 0 ? rng.below(2 * maxShift + 1) - maxShift : 0
            let dx = maxShift > 0 ? rng.below(2 * maxShift + 1) - maxShift : 0
            for r in 0..<side {
                let sr = r - dy
                for c in 0..<side {
                    var sc = c - dx
                    if flip { sc = side - 1 - sc }
                    if sr < 0 || sr >= side || sc < 0 || sc >= side {
                        x.append(0)
                    } else {
                        x.append(Float(image[sr * side + sc]) * scale)
                    }
                }
            }
        }
    }
}
