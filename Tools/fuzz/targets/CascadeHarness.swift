// libFuzzer target: the Haar cascade reader (Vision's XML parser and HaarCascade(xml:)), and a
// detection with every accepted cascade: its checks are what keep the C window scan inside
// its arrays. Built by Tools/fuzz/run.sh cascade with the Runtime and Vision modules and the
// C kernels (CVision's scan under AddressSanitizer).
// Invariants: a rejected file gives a non-empty message; an accepted cascade scans a 40x40
// test image (one thread, every scale) without a fault, every candidate window inside it.

import Vision
#if canImport(Glibc)
import Glibc
#endif

/// A 40x40 gray test image: a bright disc on a gradient, so windows see varied sums.
let testImage: [UInt8] = (0..<40 * 40).map { i in
    let x = i % 40, y = i / 40
    let d = (x - 20) * (x - 20) + (y - 18) * (y - 18)
    return UInt8(truncatingIfNeeded: d < 100 ? 230 : (x * 3 + y * 2) & 0xFF)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCascade(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let cascade: HaarCascade
    do throws(CascadeError) {
        cascade = try HaarCascade(xml: bytes)
    } catch {
        if error.message.isEmpty { fail("empty error message") }
        return 0
    }
    guard (3...1000).contains(cascade.windowWidth), (3...1000).contains(cascade.windowHeight), !cascade.stages.isEmpty else {
        fail("accepted a \(cascade.windowWidth)x\(cascade.windowHeight) cascade of \(cascade.stages.count) stages")
    }
    let detector = FaceDetector(cascade: cascade)
    var options = DetectionOptions()
    options.minSize = 0
    options.threads = 1
    options.minNeighbors = 0
    let result: Result<[Box], DetectionError> = testImage.withUnsafeBufferPointer { p in
        do throws(DetectionError) {
            return .success(try detector.candidates(GrayView(pixels: p.baseAddress!, width: 40, height: 40, stride: 40), options: options))
        } catch {
            return .failure(error)
        }
    }
    switch result {
    case .success(let boxes):
        for b in boxes where b.x < 0 || b.y < 0 || b.width <= 0 || b.height <= 0 || b.x + b.width > 40 || b.y + b.height > 40 {
            fail("candidate \(b) is not inside the 40x40 image")
        }
    case .failure(let error):
        fail("detection failed on an accepted cascade: \(error)")
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
