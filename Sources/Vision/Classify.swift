// Detect and classify: faces found in a photo, cropped by the crop rule, resized to the plan's
// input and classified in batches — the path from a photo to emotions, for embedders (the C
// API wraps it) and for `fergc predict`.

import Runtime

/// One face: where it is, what the model saw (side x side gray pixels) and its probabilities.
public struct FaceResult: Sendable {
    public var box: Box
    public var crop: [UInt8]
    public var probabilities: [Float]
    public var best: Int { argmax(probabilities) }
}

extension LoadedPlan {
    /// The side of the square grayscale image the plan takes ([1, S, S] or [S, S]), if it does.
    public var faceSide: Int? {
        let s = inputShape
        if s.count == 3, s[0] == 1, s[1] == s[2] { return s[1] }
        if s.count == 2, s[0] == s[1] { return s[0] }
        return nil
    }
}

extension Session {
    /// Crops each box from the gray image with `rule` and classifies the crops in batches.
    public func classify(_ image: GrayView, boxes: [Box], rule: CropRule = .standard) throws -> [FaceResult] {
        guard let side = model.faceSide else {
            throw ModelError("plan '\(model.plan.name)': its input \(model.inputShape) is not a square grayscale image ([1, S, S] or [S, S])")
        }
        guard !boxes.isEmpty else { return [] }
        var crops: [[UInt8]] = []
        for b in boxes {
            guard b.width > 0, b.height > 0, b.x < image.width, b.y < image.height, b.x + b.width > 0, b.y + b.height > 0 else {
                throw ModelError("box \(b) is empty or outside the \(image.width)x\(image.height) image")
            }
            crops.append(rule.crop(image, box: b, side: side))
        }
        let probabilities = try predictRaw(pixels: crops.flatMap { $0 })
        return boxes.indices.map { FaceResult(box: boxes[$0], crop: crops[$0], probabilities: probabilities[$0]) }
    }

    /// Detects faces in a gray image and classifies each.
    public func detectAndClassify(_ image: GrayView, detector: FaceDetector, options: DetectionOptions = DetectionOptions(),
                                  rule: CropRule = .standard) throws -> [FaceResult] {
        let boxes = try detector.detect(image, options: options)
        return try classify(image, boxes: boxes, rule: rule)
    }

    /// The same on an 8-bit RGB buffer (interleaved, `stride` bytes per row), converted to gray
    /// with OpenCV's BGR2GRAY weights first.
    public func detectAndClassify(rgb: UnsafePointer<UInt8>, width: Int, height: Int, stride: Int, detector: FaceDetector,
                                  options: DetectionOptions = DetectionOptions(), rule: CropRule = .standard) throws -> [FaceResult] {
        guard width > 0, height > 0, stride >= 3 * width else { throw DetectionError("bad RGB geometry: \(width)x\(height), stride \(stride)") }
        let gray = grayFromRGB(rgb, width: width, height: height, stride: stride)
        return try gray.withUnsafeBufferPointer {
            try detectAndClassify(GrayView(pixels: $0.baseAddress!, width: width, height: height, stride: width), detector: detector, options: options, rule: rule)
        }
    }
}
