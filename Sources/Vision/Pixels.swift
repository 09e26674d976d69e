// Pixels for detection and classification: gray from colour with OpenCV's BGR2GRAY weights,
// and the crop of a detected face resized to the model's input.

import CVision

/// An owned 8-bit image, row-major, `channels` 1 (gray) or 3 (RGB) interleaved, no padding.
public struct Image: Sendable, Equatable {
    public var width: Int, height: Int, channels: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "Image: 1 or 3 channels")
        precondition(pixels.count == width * height * channels, "Image: pixel count does not match the size")
        (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
    }

    /// This image in gray (itself when it is gray).
    public func gray() -> Image {
        if channels == 1 { return self }
        return pixels.withUnsafeBufferPointer {
            Image(width: width, height: height, channels: 1,
                  pixels: grayFromRGB($0.baseAddress!, width: width, height: height, stride: width * 3))
        }
    }

    /// Runs body on a view of a gray image.
    public func withGrayView<R>(_ body: (GrayView) throws -> R) rethrows -> R {
        precondition(channels == 1, "withGrayView: convert with gray() first")
        return try pixels.withUnsafeBufferPointer { try body(GrayView(pixels: $0.baseAddress!, width: width, height: height, stride: width)) }
    }
}

/// Gray from interleaved RGB as OpenCV's cvtColor(BGR2GRAY) computes it for 8-bit images:
/// (4899 R + 9617 G + 1868 B + 8192) >> 14 (0.299, 0.587, 0.114 in 14-bit fixed point).
public func grayFromRGB(_ rgb: UnsafePointer<UInt8>, width: Int, height: Int, stride: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: width * height)
    out.withUnsafeMutableBufferPointer { o in
        for y in 0..<height {
            let row = rgb + y * stride
            for x in 0..<width {
                let r = UInt32(row[3 * x]), g = UInt32(row[3 * x + 1]), b = UInt32(row[3 * x + 2])
                o[y * width + x] = UInt8((r &* 4899 &+ g &* 9617 &+ b &* 1868 &+ 8192) >> 14)
            }
        }
    }
    return out
}

/// How a detected box becomes the model's input: grown by `margin` (a fraction of its side, on
/// each side), made square around its centre, clamped to the image by shifting (then shrinking
/// if the image is smaller), and resized with `filter`.
public struct CropRule: Sendable, Equatable, CustomStringConvertible {
    public enum Filter: String, Sendable, CaseIterable { case area, bilinear }
    public var margin: Double
    public var filter: Filter
    public init(margin: Double, filter: Filter) { (self.margin, self.filter) = (margin, filter) }

    /// The rule fergc uses (chosen by measured agreement on the FER scene: docs/predict.md).
    public static let standard = CropRule(margin: 0, filter: .bilinear)

    public var description: String { "margin \(margin), \(filter.rawValue)" }

    /// The square region of a width x height image cropped for `box`.
    public func region(for box: Box, width: Int, height: Int) -> Box {
        let side0 = Double(max(box.width, box.height)) * (1 + 2 * margin)
        var side = max(1, Int(side0.rounded()))
        side = min(side, width, height)
        let cx = Double(box.x) + Double(box.width) / 2, cy = Double(box.y) + Double(box.height) / 2
        var x = Int((cx - Double(side) / 2).rounded()), y = Int((cy - Double(side) / 2).rounded())
        x = min(max(x, 0), width - side)
        y = min(max(y, 0), height - side)
        return Box(x: x, y: y, width: side, height: side)
    }

    /// The crop of `box` from a gray view, resized to side x side.
    public func crop(_ image: GrayView, box: Box, side: Int) -> [UInt8] {
        let r = region(for: box, width: image.width, height: image.height)
        var out = [UInt8](repeating: 0, count: side * side)
        let src = image.pixels + r.y * image.stride + r.x
        out.withUnsafeMutableBufferPointer { o in
            switch filter {
            case .area: cv_resize_area(src, Int32(r.width), Int32(r.height), Int32(image.stride), o.baseAddress, Int32(side), Int32(side))
            case .bilinear: cv_resize_linear(src, Int32(r.width), Int32(r.height), Int32(image.stride), o.baseAddress, Int32(side), Int32(side))
            }
        }
        return out
    }
}

extension CropRule {
    /// The whole image resized to side x side with this rule's filter (for pre-cropped faces).
    public func resizeWhole(_ image: GrayView, side: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: side * side)
        out.withUnsafeMutableBufferPointer { o in
            switch filter {
            case .area: cv_resize_area(image.pixels, Int32(image.width), Int32(image.height), Int32(image.stride), o.baseAddress, Int32(side), Int32(side))
            case .bilinear: cv_resize_linear(image.pixels, Int32(image.width), Int32(image.height), Int32(image.stride), o.baseAddress, Int32(side), Int32(side))
            }
        }
        return out
    }
}
