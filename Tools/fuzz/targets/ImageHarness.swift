// libFuzzer target: ImageIO's decoders, what `fergc predict` and `fergc detect` read photos
// with. Built by Tools/fuzz/run.sh pgm|jpeg|png with -D FUZZ_PGM / FUZZ_JPEG / FUZZ_PNG (one
// decoder per target, so coverage guidance stays on one format), linked with the Runtime,
// Vision and ImageIO modules. TurboJPEG and libpng are Debian's, not instrumented: the JPEG
// and PNG targets exercise fergc's side (size checks before allocation, error paths, the
// buffers handed to the libraries under AddressSanitizer) with little guidance inside them.
// Invariants: a rejected image gives an ImageError naming the input with a message; an
// accepted one has a size within ImageIO's limits, 1 or 3 channels and exactly
// width x height x channels bytes, converts to gray, and decodes the same through
// ImageIO.decode (the format sniffed from the content, as the commands do).

import ImageIO
import Vision
#if canImport(Glibc)
import Glibc
#endif

let inputName = "fuzz-input"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do throws(ImageError) {
        #if FUZZ_JPEG
        let image = try ImageIO.decodeJPEG(bytes, path: inputName)
        let format = ImageFormat.jpeg
        #elseif FUZZ_PNG
        let image = try ImageIO.decodePNG(bytes, path: inputName)
        let format = ImageFormat.png
        #else
        let image = try ImageIO.decodePNM(bytes, path: inputName)
        let format = ImageFormat.pnm
        #endif
        guard image.width >= 1, image.height >= 1, image.width <= ImageIO.maxSide, image.height <= ImageIO.maxSide,
              image.width * image.height <= ImageIO.maxPixels else { fail("accepted an image of \(image.width)x\(image.height)") }
        guard image.channels == 1 || image.channels == 3 else { fail("\(image.channels) channels") }
        guard image.pixels.count == image.width * image.height * image.channels else {
            fail("\(image.pixels.count) bytes for \(image.width)x\(image.height)x\(image.channels)")
        }
        let gray = image.gray()
        guard gray.channels == 1, gray.pixels.count == image.width * image.height else { fail("gray() gave \(gray.pixels.count) bytes") }
        if ImageIO.sniff(bytes) == format {
            do throws(ImageError) {
                let again = try ImageIO.decode(bytes, path: inputName)
                if again != image { fail("ImageIO.decode gives another image than the \(format) decoder") }
            } catch {
                fail("ImageIO.decode rejects what the \(format) decoder accepts: \(error)")
            }
        }
    } catch {
        guard error.path == inputName, !error.message.isEmpty, error.description.hasPrefix("\(inputName): ") else {
            fail("error without the input's name or a message: '\(error.description)'")
        }
    }
    return 0
}

func fail(_ message: String) -> Never {
    fputs("fuzz invariant violated: \(message)\n", stderr)
    abort()
}
