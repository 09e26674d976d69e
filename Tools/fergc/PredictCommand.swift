// fergc predict: classify faces with a compiled .plan, through the embedding API (the same path
// as programs that embed the runtime): binary PGM images, or a row of a FER2013 CSV.

import Foundation
import Runtime
import Training

enum PredictCommand {
    static let spec = CommandSpec(
        name: "predict",
        usage: "predict M.plan IMAGE.pgm... [--csv F --row N [--split S]] [--json]",
        summary: "Classify 48x48 grayscale faces (binary PGM, or a FER2013 CSV row) with a .plan.",
        options: [
            OptionSpec(name: "csv", kind: .value("F"), help: "A FER2013 CSV (plain or .gz) to take a face from (with --row)."),
            OptionSpec(name: "row", kind: .value("N"), help: "The face to take from --csv: 0-based, in file order (see below)."),
            OptionSpec(name: "split", kind: .value("S"), help: "With --csv: count --row within Training, PublicTest or PrivateTest only."),
            OptionSpec(name: "json", kind: .flag, help: "Print as JSON: classes, and per image emotion, class_index and probabilities."),
        ],
        details: """
        Images are binary PGM (P5), 8-bit, of the plan's input size (48x48 for FER2013 models);
        pixels are multiplied by the plan's input scale. Without --split, --row counts faces in
        the order Training, PublicTest, PrivateTest, which is file order for Kaggle's
        fer2013.csv (grouped by Usage); the CSV's label is printed beside the prediction.

        EXAMPLES:
          fergc predict vgg_tuned.plan face.pgm
          fergc predict vgg_tuned.plan --csv Data/fer2013-sample.csv.gz --row 3 --json
        """)

    struct Face {
        var source: String
        var pixels: [UInt8]
        var label: Int? = nil
    }

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard let planPath = a.positional.first else { throw UsageError(message: "missing the plan file (M.plan)", command: spec.name) }
        let images = Array(a.positional.dropFirst())
        if a.value("csv") != nil, a.value("row") == nil { throw UsageError(message: "--csv needs --row N (which face)", command: spec.name) }
        if a.value("csv") == nil, a.value("row") != nil || a.value("split") != nil {
            throw UsageError(message: "--row and --split only apply with --csv", command: spec.name)
        }
        guard !images.isEmpty || a.value("csv") != nil else {
            throw UsageError(message: "nothing to classify: give PGM images or --csv F --row N", command: spec.name)
        }
        let model: LoadedPlan
        do { model = try LoadedPlan(path: planPath) } catch { throw CLIError(error.description) }
        guard let (height, width) = imageSize(model) else {
            throw CLIError("\(planPath): the plan's input \(model.inputShape) is not a grayscale image ([1, H, W] or [H, W])")
        }

        var faces: [Face] = []
        for path in images {
            faces.append(Face(source: path, pixels: try readPGM(path, width: width, height: height)))
        }
        if let csv = a.value("csv") {
            faces.append(try csvFace(csv, a, width: width, height: height))
        }

        let session = try Session(model)
        let probabilities = try session.predictRaw(pixels: faces.flatMap(\.pixels))
        let names = model.classNames
        if a.flag("json") {
            let predictions = zip(faces, probabilities).map { face, p -> [String: Any] in
                var j: [String: Any] = ["image": face.source, "emotion": names[argmax(p)], "class_index": argmax(p),
                                        "probabilities": p.map(Double.init)]
                if let label = face.label { j["label"] = names.indices.contains(label) ? names[label] : String(label); j["label_index"] = label }
                return j
            }
            Console.out(try jsonText(["model": model.plan.name, "plan": planPath, "classes": names, "predictions": predictions]))
        } else {
            var s = ""
            let width = max(names.map(\.count).max() ?? 0, 8)
            for (face, p) in zip(faces, probabilities) {
                let best = argmax(p)
                s += "\(face.source): \(names[best]) (\(String(format: "%.3f", p[best])))"
                if let label = face.label { s += ", label \(names.indices.contains(label) ? names[label] : String(label))" }
                s += "\n"
                for (j, name) in names.enumerated() {
                    s += "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: " %.4f", p[j]) + (j == best ? "  <" : "") + "\n"
                }
            }
            Console.out(s)
        }
    }

    /// (height, width) of a plan whose image input is [1, H, W] or [H, W].
    static func imageSize(_ model: LoadedPlan) -> (Int, Int)? {
        let s = model.inputShape
        if s.count == 3, s[0] == 1 { return (s[1], s[2]) }
        if s.count == 2 { return (s[0], s[1]) }
        return nil
    }

    /// A binary 8-bit PGM (P5) of exactly width x height (Training's `decodePGM`), opened
    /// without blocking and only if it is a regular file.
    static func readPGM(_ path: String, width: Int, height: Int) throws -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = try readRegularFile(path, limit: 64 << 20) } catch { throw CLIError(error.description) }
        do { return try decodePGM(bytes, width: width, height: height) } catch { throw CLIError("\(path): \(error.message)") }
    }

    static func csvFace(_ path: String, _ a: ParsedArguments, width: Int, height: Int) throws -> Face {
        guard width == FaceSet.side, height == FaceSet.side else {
            throw CLIError("FER2013 faces are \(FaceSet.side)x\(FaceSet.side); the plan takes \(width)x\(height)")
        }
        guard let rowText = a.value("row"), let row = Int(rowText), row >= 0 else {
            throw UsageError(message: "--row expects a non-negative integer, got '\(a.value("row") ?? "")'", command: spec.name)
        }
        var splits = Split.allCases
        if let name = a.value("split") {
            guard let s = Split(rawValue: name) else {
                throw UsageError(message: "unknown split '\(name)'; expected Training, PublicTest or PrivateTest", command: spec.name)
            }
            splits = [s]
        }
        let data: FERData
        do { data = try loadFER2013(path: path, options: LoadOptions(splits: Set(splits))) } catch { throw CLIError("\(error)") }
        var k = row
        for split in [Split.training, .publicTest, .privateTest] where splits.contains(split) {
            let set = data[split]
            if k < set.count {
                let p = FaceSet.pixelsPerImage
                return Face(source: "\(path) row \(row)" + (a.value("split") != nil ? " of \(split.rawValue)" : "") + " (\(split.rawValue))",
                            pixels: Array(set.pixels[k * p..<(k + 1) * p]), label: Int(set.labels[k]))
            }
            k -= set.count
        }
        throw CLIError("\(path): no row \(row): the file has \(row - k) faces" + (a.value("split").map { " in \($0)" } ?? ""))
    }
}
