// classify-embed MODEL.plan [FACE.pgm]: loads a compiled plan with fergc's Runtime and prints
// the predicted emotion and every class probability. Without a PGM (binary P5, 8-bit, of the
// plan's input size) it classifies a synthetic image.

import Runtime

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes to standard error (file descriptor 2).
func printError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = write(2, &bytes, bytes.count)
}

func fail(_ message: String) -> Never {
    printError("error: \(message)\n")
    exit(1)
}

/// The bytes of a file.
func readFile(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { fail("\(path): cannot open") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
    }
}

/// The pixels of a binary 8-bit PGM of exactly width x height.
func readPGM(_ path: String, width: Int, height: Int) -> [UInt8] {
    let bytes = readFile(path)
    guard bytes.starts(with: Array("P5".utf8)) else { fail("\(path): not a binary PGM (P5)") }
    var pos = 2
    var fields: [Int] = []
    while fields.count < 3 && pos < bytes.count {
        let c = bytes[pos]
        if c == UInt8(ascii: "#") {
            while pos < bytes.count && bytes[pos] != 10 { pos += 1 }
        } else if c >= 48 && c <= 57 {
            var v = 0
            while pos < bytes.count && bytes[pos] >= 48 && bytes[pos] <= 57 { v = v * 10 + Int(bytes[pos] - 48); pos += 1 }
            fields.append(v)
            continue
        }
        pos += 1
    }
    pos += 1  // the whitespace before the pixels
    guard fields == [width, height, 255] else { fail("\(path): image is \(fields) (width, height, maxval); the plan takes \(width)x\(height), 255") }
    guard bytes.count - pos >= width * height else { fail("\(path): truncated") }
    return Array(bytes[pos..<pos + width * height])
}

let args = CommandLine.arguments
guard args.count == 2 || args.count == 3 else {
    printError("usage: classify-embed MODEL.plan [FACE.pgm]\n")
    exit(2)
}
let model: LoadedPlan
do { model = try LoadedPlan(path: args[1]) } catch { fail(error.description) }
let shape = model.inputShape
let (height, width) = (shape.count >= 2 ? shape[shape.count - 2] : 0, shape.last ?? 0)
guard model.inputElements == height * width else { fail("the plan's input \(shape) is not one grayscale image") }
print("plan: \(model.plan.name), input \(shape), \(model.classes) classes")

let pixels: [UInt8]
if args.count == 3 {
    pixels = readPGM(args[2], width: width, height: height)
    print("image: \(args[2])")
} else {
    pixels = (0..<height * width).map { k in UInt8(128 + 100 * sin(Double(k % width) / 6) * cos(Double(k / width) / 9)) }
    print("image: synthetic \(width)x\(height)")
}
do {
    let session = try Session(model)
    let probs = try session.predictRaw(pixels: pixels)[0]
    print("emotion: \(model.classNames[argmax(probs)])")
    for (name, p) in zip(model.classNames, probs) {
        let padded = name + String(repeating: " ", count: max(0, 10 - name.count))
        print("  \(padded) \(p)")
    }
} catch {
    fail("\(error)")
}
