// Turning a FaceSet into batches: a seeded shuffle per epoch, pixel scaling, and optional
// augmentation (horizontal flips, shifts with zeros entering at the edges; random crops from a
// padded face, rotation, zoom and random erasing in `augmentFace`), each image's choices drawn
// from a generator seeded by (seed, epoch, position) so a resumed run sees the same batches.

import Foundation
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

/// Fills `x` ([n, 1, S, S] floats, S = `augmentation.outputSide`) and `labels` for the images
/// `indices` of `set`. The random part of `augmentation` applies only when given a generator
/// seed; without one, a crop is the centre crop.
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
            if augmentation.usesExtendedOptions {
                var rng = augmentSeed.map { SplitMix64(seed: mixSeed($0, UInt64(k))) }
                augmentFace(image, augmentation, rng: &rng, scale: scale, into: &x)
                continue
            }
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

/// The random choices of one face's extended augmentation.
struct FaceDraw: Equatable {
    /// The crop's top-left corner in face coordinates (after the shift).
    var row: Int, col: Int
    var flip = false
    /// Radians, counter-clockwise as displayed (rows down), and the zoom factor.
    var angle = 0.0, zoom = 1.0
    var erase: (row: Int, col: Int, height: Int, width: Int)?

    static func == (a: FaceDraw, b: FaceDraw) -> Bool {
        a.row == b.row && a.col == b.col && a.flip == b.flip && a.angle == b.angle && a.zoom == b.zoom
            && a.erase?.row == b.erase?.row && a.erase?.col == b.erase?.col && a.erase?.height == b.erase?.height && a.erase?.width == b.erase?.width
    }

    /// The centre crop, nothing random.
    init(centre a: Augmentation) {
        row = (FaceSet.side - a.outputSide) / 2
        col = row
    }

    /// The draws, in this order: flip (when `hflip`), the crop's row and column offsets in the
    /// padded face (when there is room), the shift's row and column (when `shift`), the angle
    /// (when `rotate`), the zoom (when `scale`), and for erasing a coin, then the area, aspect
    /// ratio, row and column of the rectangle.
    init(_ a: Augmentation, _ g: inout SplitMix64) {
        self.init(centre: a)
        let F = FaceSet.side, S = a.outputSide
        if a.horizontalFlip { flip = g.next() & 1 == 1 }
        let room = F + 2 * a.pad - S
        if room > 0 {
            row = g.below(room + 1) - a.pad
            col = g.below(room + 1) - a.pad
        }
        let maxShift = Int((a.shift * Double(F)).rounded(.down))
        if maxShift > 0 {
            row -= g.below(2 * maxShift + 1) - maxShift
            col -= g.below(2 * maxShift + 1) - maxShift
        }
        if a.rotate > 0 { angle = (g.unit() * 2 - 1) * a.rotate * Double.pi / 180 }
        if a.scale > 0 { zoom = 1 + (g.unit() * 2 - 1) * a.scale }
        if a.erase > 0, g.unit() < a.erase {
            let area = Double(S * S) * (a.eraseMin + (a.eraseMax - a.eraseMin) * g.unit())
            let logRatio = log(0.3) + (log(1 / 0.3) - log(0.3)) * g.unit()
            let ratio = exp(logRatio)
            let h = min(S, max(1, Int((area * ratio).squareRoot().rounded())))
            let w = min(S, max(1, Int((area / ratio).squareRoot().rounded())))
            erase = (g.below(S - h + 1), g.below(S - w + 1), h, w)
        }
    }
}

/// One face through the extended augmentation (`Augmentation.usesExtendedOptions`), appending
/// side*side floats to `x`: with a generator, the choices `FaceDraw` makes; without one
/// (validation), the centre crop, nothing else.
func augmentFace(_ image: UnsafePointer<UInt8>, _ a: Augmentation, rng: inout SplitMix64?,
                 scale: Float, into x: inout [Float]) {
    var draw = FaceDraw(centre: a)
    if var g = rng {
        draw = FaceDraw(a, &g)
        rng = g
    }
    renderFace(image, a, draw, scale: scale, into: &x)
}

/// Renders a face's view: integer geometry (no rotation or zoom) copies pixels; otherwise each
/// output pixel is a bilinear blend of the four face pixels around the point it comes from
/// (rotation and zoom about the crop's centre, then the mirror), pixels outside the face given
/// by the pad mode. Then the erased rectangle is set to zero.
func renderFace(_ image: UnsafePointer<UInt8>, _ a: Augmentation, _ d: FaceDraw, scale: Float, into x: inout [Float]) {
    let F = FaceSet.side, S = a.outputSide
    // A face pixel, any coordinates, through the pad mode.
    func pixel(_ r: Int, _ c: Int) -> Float {
        var r = r, c = c
        if r < 0 || r >= F || c < 0 || c >= F {
            switch a.padMode {
            case .zero: return 0
            case .edge:
                r = min(max(r, 0), F - 1)
                c = min(max(c, 0), F - 1)
            case .reflect:
                let period = 2 * (F - 1)
                r = ((r % period) + period) % period
                c = ((c % period) + period) % period
                if r >= F { r = period - r }
                if c >= F { c = period - c }
            }
        }
        return Float(image[r * F + c]) * scale
    }
    let start = x.count
    if d.angle == 0 && d.zoom == 1 {
        for r in 0..<S {
            for c in 0..<S { x.append(pixel(d.row + r, d.col + (d.flip ? S - 1 - c : c))) }
        }
    } else {
        let centre = Double(S - 1) / 2
        let cy = Double(d.row) + centre, cx = Double(d.col) + centre
        let cosA = cos(d.angle) / d.zoom, sinA = sin(d.angle) / d.zoom
        for r in 0..<S {
            let u = Double(r) - centre
            for c in 0..<S {
                let v = Double(d.flip ? S - 1 - c : c) - centre
                let sy = cy + cosA * u + sinA * v, sx = cx - sinA * u + cosA * v
                let y0 = Int(sy.rounded(.down)), x0 = Int(sx.rounded(.down))
                let fy = Float(sy - Double(y0)), fx = Float(sx - Double(x0))
                let top = (1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)
                let bottom = (1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)
                x.append((1 - fy) * top + fy * bottom)
            }
        }
    }
    if let e = d.erase {
        for r in e.row..<(e.row + e.height) {
            for c in e.col..<(e.col + e.width) { x[start + r * S + c] = 0 }
        }
    }
}
