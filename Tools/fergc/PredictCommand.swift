// fergc predict: from photos (or pre-cropped faces, or a FER2013 CSV row) to emotions with a
// compiled .plan. Faces are found with a Haar cascade (Vision), cropped by the crop rule,
// classified in batches through the embedding API, and reported one record per face; an image
// without a face gives a `no_face` record and an unreadable one an `error` record, and the run
// goes on.

import Foundation
import ImageIO
import Runtime
import Training
import Vision

enum PredictCommand {
    static let spec = CommandSpec(
        name: "predict",
        usage: "predict M.plan PATH... [-r] [--format table|jsonl|csv] [--annotate DIR] [--save-crops DIR] [--csv F --row N [--split S]]",
        summary: "Find the faces in photos and classify their emotions with a .plan (or classify 48x48 faces, or a FER2013 CSV row).",
        options: [
            OptionSpec(name: "recursive", kind: .flag, help: "-r: walk directories recursively (without it, a directory's own images only)."),
            OptionSpec(name: "format", kind: .value("F"), help: "table, jsonl or csv (default: table on a terminal, jsonl when piped)."),
            OptionSpec(name: "json", kind: .flag, help: "The same as --format jsonl."),
            OptionSpec(name: "annotate", kind: .value("DIR"), help: "Write each image to DIR as PNG with its boxes, emotions and scores."),
            OptionSpec(name: "save-crops", kind: .value("DIR"), help: "Write each face as the model saw it (48x48 gray PNG) to DIR."),
            OptionSpec(name: "detector", kind: .value("D"), help: "auto (default), haar or none (see below)."),
            OptionSpec(name: "cascade", kind: .value("FILE"), help: "The Haar cascade (default \(FaceDetector.defaultCascadePath))."),
            OptionSpec(name: "boxes", kind: .value("FILE"), help: "Take the faces from FILE (JSON lines with \"file\" and \"box\": [x, y, w, h], as --format jsonl prints) instead of detecting."),
            OptionSpec(name: "scale-factor", kind: .value("S"), help: "Detection: pyramid step (default 1.1)."),
            OptionSpec(name: "neighbors", kind: .value("N"), help: "Detection: minimum neighbours a face needs (default 5)."),
            OptionSpec(name: "min-size", kind: .value("PX"), help: "Detection: smallest face, in pixels (default 30)."),
            OptionSpec(name: "threads", kind: .value("N"), help: "Detection threads (default: the online processors)."),
            OptionSpec(name: "crop-margin", kind: .value("M"), help: "Crop rule: grow the square box by M of its side on each side (default \(CropRule.standard.margin))."),
            OptionSpec(name: "crop-filter", kind: .value("F"), help: "Crop rule: area or bilinear resize to 48x48 (default \(CropRule.standard.filter.rawValue))."),
            OptionSpec(name: "batch", kind: .value("N"), help: "Faces per classification batch (default 64)."),
            OptionSpec(name: "csv", kind: .value("F"), help: "A FER2013 CSV (plain or .gz) to take a face from (with --row)."),
            OptionSpec(name: "row", kind: .value("N"), help: "The face to take from --csv: 0-based, in file order (see below)."),
            OptionSpec(name: "split", kind: .value("S"), help: "With --csv: count --row within Training, PublicTest or PrivateTest only."),
        ],
        details: """
        PATHs are images (JPEG, PNG, binary PGM/PPM; the format is read from the content),
        directories (their .jpg/.jpeg/.png/.pgm/.ppm/.pnm files, sorted; -r to descend), or '-'
        for a list of paths on stdin, one per line. Colour is turned to gray with OpenCV's
        BGR2GRAY weights.

        Faces: --detector auto (the default) takes an image of exactly the plan's input size
        (48x48) as one pre-cropped face, as FER2013 faces are, and looks for faces in any other
        image with the Haar cascade (OpenCV 4's detectMultiScale: scale 1.1, 5 neighbours, 30 px
        minimum). --detector haar always detects; --detector none takes every image whole.
        A face's crop: its box made square, grown by --crop-margin, kept inside the image, and
        resized to 48x48 (area average; chosen by measured agreement, see docs/predict.md).

        Output, one record per face: file, face index, box [x, y, w, h], the top emotion and
        its probability, and the seven probabilities. An image without a face gives a record
        with status no_face, an image that cannot be read one with status error, and the run
        goes on. Progress goes to stderr when it is a terminal.

        EXIT STATUS:
          0   every input was processed (faces or no_face)
          1   some inputs failed (error records)
          64  usage error (bad option or value)
          65  the plan, the cascade or the --boxes file cannot be used
          66  no input: no image found in the PATHs given

        EXAMPLES:
          fergc predict Models/trained/vgg_tuned.plan photo.jpg
          fergc predict Models/trained/vgg_tuned.plan photos/ -r --format csv > emotions.csv
          find . -name '*.jpg' | fergc predict vgg_tuned.plan - --annotate annotated/
          fergc predict vgg_tuned.plan face.pgm
          fergc predict vgg_tuned.plan --csv Data/fer2013-sample.csv.gz --row 3
        """)

    enum Format: String { case table, jsonl, csv }
    enum DetectorMode: String { case auto, haar, none }

    /// One output record.
    struct Record {
        enum Status: String { case face, noFace = "no_face", error }
        var file: String
        var status: Status
        var face = 0
        var box: Box? = nil
        var probabilities: [Float] = []
        var label: String? = nil
        var error: String? = nil
    }

    /// An image read and its faces found, waiting for classification.
    struct Pending {
        var file: String
        var image: Image?         // gray, for annotations
        var color: Image?         // the decoded image (for annotations)
        var boxes: [Box] = []
        var crops: [[UInt8]] = []
        var label: Int? = nil
        var error: String? = nil
    }

    static func main(_ args: [String]) throws {
        do {
            try run(args)
        } catch let e as UsageError {
            Console.err(e.description + "\n")
            throw ExitStatus(64)
        }
    }

    static func run(_ args: [String]) throws {
        // -r is --recursive (before a '--', which ends the options).
        let end = args.firstIndex(of: "--") ?? args.count
        let a = try parseArguments(args.enumerated().map { $0.offset < end && $0.element == "-r" ? "--recursive" : $0.element }, spec)
        guard let planPath = a.positional.first else { throw UsageError(message: "missing the plan file (M.plan)", command: spec.name) }
        let paths = Array(a.positional.dropFirst())
        if a.value("csv") != nil, a.value("row") == nil { throw UsageError(message: "--csv needs --row N (which face)", command: spec.name) }
        if a.value("csv") == nil, a.value("row") != nil || a.value("split") != nil {
            throw UsageError(message: "--row and --split only apply with --csv", command: spec.name)
        }
        guard !paths.isEmpty || a.value("csv") != nil else {
            throw UsageError(message: "nothing to classify: give images, directories, '-' (paths on stdin) or --csv F --row N", command: spec.name)
        }
        let format: Format
        if let f = a.value("format") {
            guard let v = Format(rawValue: f) else { throw UsageError(message: "--format expects table, jsonl or csv, got '\(f)'", command: spec.name) }
            format = v
        } else {
            format = a.flag("json") ? .jsonl : (isatty(1) != 0 ? .table : .jsonl)
        }
        var mode = DetectorMode.auto
        if let d = a.value("detector") {
            guard let v = DetectorMode(rawValue: d) else { throw UsageError(message: "--detector expects auto, haar or none, got '\(d)'", command: spec.name) }
            mode = v
        }
        if a.value("boxes") != nil, a.value("detector") != nil {
            throw UsageError(message: "--boxes replaces detection: it does not go with --detector", command: spec.name)
        }
        var options = DetectionOptions()
        if let s = a.value("scale-factor") {
            guard let v = Double(s), v > 1.0001, v <= 4 else { throw UsageError(message: "--scale-factor expects a number in (1, 4], got '\(s)'", command: spec.name) }
            options.scaleFactor = v
        }
        options.minNeighbors = try a.int("neighbors", spec.name, range: 0...1000) ?? 5
        options.minSize = try a.int("min-size", spec.name, range: 1...100_000) ?? 30
        options.threads = try a.int("threads", spec.name, range: 1...64) ?? 0
        var rule = CropRule.standard
        if let m = a.value("crop-margin") {
            guard let v = Double(m), v >= -0.4, v <= 2 else { throw UsageError(message: "--crop-margin expects a number in -0.4...2, got '\(m)'", command: spec.name) }
            rule.margin = v
        }
        if let f = a.value("crop-filter") {
            guard let v = CropRule.Filter(rawValue: f) else { throw UsageError(message: "--crop-filter expects area or bilinear, got '\(f)'", command: spec.name) }
            rule.filter = v
        }
        let batch = try a.int("batch", spec.name, range: 1...4096) ?? 64

        // The plan (exit 65 when it cannot be used).
        let model: LoadedPlan
        do { model = try LoadedPlan(path: planPath) } catch {
            Console.err("error: \(error.description)\n")
            throw ExitStatus(65)
        }
        guard let side = model.faceSide else {
            Console.err("error: \(planPath): the plan's input \(model.inputShape) is not a square grayscale image ([1, S, S] or [S, S])\n")
            throw ExitStatus(65)
        }
        let session: Session
        do { session = try Session(model) } catch {
            Console.err("error: \(planPath): \(error)\n")
            throw ExitStatus(65)
        }

        // Boxes from a file, or the detector (loaded only if an image needs it).
        var givenBoxes: [String: [Box]]?
        if let f = a.value("boxes") {
            do { givenBoxes = try readBoxes(f) } catch let e as CLIError {
                Console.err(e.description + "\n")
                throw ExitStatus(65)
            }
        }
        let cascadePath = a.value("cascade") ?? FaceDetector.defaultCascadePath
        var detector: FaceDetector?
        func getDetector() throws -> FaceDetector {
            if let detector { return detector }
            do { detector = try FaceDetector(path: cascadePath) } catch {
                Console.err("error: \(error.description)\n")
                throw ExitStatus(65)
            }
            return detector!
        }
        if a.value("cascade") != nil { _ = try getDetector() }  // a bad --cascade fails at once

        // Inputs.
        var files: [String] = []
        var missing: [Record] = []
        for p in paths {
            if p == "-" {
                while let line = readLine() {
                    let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
                    if !t.isEmpty { files += expand(t, recursive: a.flag("recursive"), missing: &missing) }
                }
            } else {
                files += expand(p, recursive: a.flag("recursive"), missing: &missing)
            }
        }
        var csvFaces: [Pending] = []
        if let csv = a.value("csv") {
            let face = try csvFace(csv, a, width: side, height: side)
            csvFaces.append(Pending(file: face.source, image: nil, color: nil, boxes: [Box(x: 0, y: 0, width: side, height: side)],
                                    crops: [face.pixels], label: face.label))
        }
        if files.isEmpty, csvFaces.isEmpty {
            for m in missing { Console.err("error: \(m.file): \(m.error ?? "")\n") }
            Console.err("error: no input: no image found in \(paths.joined(separator: " "))\n")
            throw ExitStatus(66)
        }
        for dir in [a.value("annotate"), a.value("save-crops")].compactMap({ $0 }) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw CLIError("\(dir): cannot create the directory: \(error.localizedDescription)")
            }
        }

        let out = Output(format: format, classNames: model.classNames)
        out.begin()
        var failed = missing.count
        for m in missing { out.write(m) }
        let progress = isatty(2) != 0 && files.count > 1
        var names = OutputNames()

        // Images in order; faces classified whenever a batch is full, and at the end.
        var pending: [Pending] = csvFaces
        func flush() throws {
            let crops = pending.flatMap(\.crops)
            var probs: [[Float]] = []
            if !crops.isEmpty { probs = try session.predictRaw(pixels: crops.flatMap { $0 }) }
            var k = 0
            for p in pending {
                if let e = p.error {
                    out.write(Record(file: p.file, status: .error, error: e))
                    continue
                }
                if p.boxes.isEmpty { out.write(Record(file: p.file, status: .noFace)) }
                var faceProbs: [[Float]] = []
                for (i, box) in p.boxes.enumerated() {
                    faceProbs.append(probs[k])
                    let label = p.label.map { model.classNames.indices.contains($0) ? model.classNames[$0] : String($0) }
                    out.write(Record(file: p.file, status: .face, face: i, box: box, probabilities: probs[k], label: label))
                    if let dir = a.value("save-crops") {
                        let path = "\(dir)/\(names.name(for: p.file, suffix: "-face\(i)"))"
                        try writeOrFail(encodePNG(p.crops[i], width: side, height: side, color: .gray), path)
                    }
                    k += 1
                }
                if let dir = a.value("annotate"), let color = p.color {
                    let path = "\(dir)/\(names.name(for: p.file, suffix: ""))"
                    try writeOrFail(annotate(color, boxes: p.boxes, probabilities: faceProbs, names: model.classNames), path)
                }
            }
            pending.removeAll()
        }
        for (i, file) in files.enumerated() {
            if progress { Console.err("\r\u{1B}[K[\(i + 1)/\(files.count)] \(file)") }
            var p = Pending(file: file, image: nil, color: nil)
            do {
                let decoded = try ImageIO.read(path: file)
                let gray = decoded.gray()
                let boxes: [Box]
                if let givenBoxes {
                    boxes = givenBoxes[file] ?? []
                } else if mode == .none || (mode == .auto && gray.width == side && gray.height == side) {
                    boxes = [Box(x: 0, y: 0, width: gray.width, height: gray.height)]
                } else {
                    let d = try getDetector()
                    boxes = try gray.withGrayView { try d.detect($0, options: options) }
                }
                let crops = try gray.withGrayView { view in
                    try boxes.map { b -> [UInt8] in
                        guard b.width > 0, b.height > 0, b.x < gray.width, b.y < gray.height, b.x + b.width > 0, b.y + b.height > 0 else {
                            throw CLIError("box \(b) is empty or outside the \(gray.width)x\(gray.height) image")
                        }
                        // A whole image taken as a face is resized as it is (not made square).
                        if b == Box(x: 0, y: 0, width: gray.width, height: gray.height), mode != .haar, givenBoxes == nil {
                            return CropRule(margin: 0, filter: rule.filter).resizeWhole(view, side: side)
                        }
                        return rule.crop(view, box: b, side: side)
                    }
                }
                p.boxes = boxes
                p.crops = crops
                if a.value("annotate") != nil { p.color = decoded }
            } catch let e as ExitStatus {
                throw e
            } catch let e as ImageError {
                p.error = e.message
            } catch let e as CLIError {
                p.error = e.message
            } catch {
                p.error = "\(error)"
            }
            if p.error != nil { failed += 1 }
            pending.append(p)
            if pending.reduce(0, { $0 + $1.crops.count }) >= batch { try flush() }
        }
        try flush()
        if progress { Console.err("\r\u{1B}[K") }
        out.end()
        if failed > 0 {
            Console.err("\(failed) of \(files.count + missing.count) input(s) failed (see the error records)\n")
            throw ExitStatus(1)
        }
    }

    static func writeOrFail(_ bytes: [UInt8], _ path: String) throws {
        do { try writeFileAtomically(bytes, to: path) } catch { throw CLIError(error.description) }
    }

    /// Files named by a path: the file itself, or a directory's images (sorted; recursively
    /// with -r). A path that does not exist becomes an error record.
    static func expand(_ path: String, recursive: Bool, missing: inout [Record]) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            missing.append(Record(file: path, status: .error, error: "no such file or directory"))
            return []
        }
        guard isDir.boolValue else { return [path] }
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            missing.append(Record(file: path, status: .error, error: "cannot list the directory"))
            return []
        }
        var out: [String] = []
        for e in entries.sorted() where !e.hasPrefix(".") {
            let full = "\(base)/\(e)"
            var sub: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: full, isDirectory: &sub)
            if sub.boolValue {
                if recursive { out += expand(full, recursive: true, missing: &missing) }
            } else if ImageIO.extensions.contains((e as NSString).pathExtension.lowercased()) {
                out.append(full)
            }
        }
        return out
    }

    /// Boxes per file from JSON lines: {"file": ..., "box": [x, y, w, h], ...}; other lines
    /// (no_face, error records) are skipped.
    static func readBoxes(_ path: String) throws -> [String: [Box]] {
        let data: [UInt8]
        do { data = try readRegularFile(path, limit: 256 << 20) } catch {
            throw CLIError("cannot read the boxes file: \(error)")
        }
        var out: [String: [Box]] = [:]
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(t.utf8)) as? [String: Any], let file = obj["file"] as? String else {
                throw CLIError("\(path):\(i + 1): expected a JSON object with \"file\" (and \"box\": [x, y, w, h])")
            }
            guard let b = obj["box"] else { out[file, default: []] += []; continue }
            guard let v = b as? [Int], v.count == 4, v[2] > 0, v[3] > 0 else {
                throw CLIError("\(path):\(i + 1): \"box\" must be [x, y, width, height] with positive integer sizes")
            }
            out[file, default: []].append(Box(x: v[0], y: v[1], width: v[2], height: v[3]))
        }
        return out
    }

    /// The image (RGB) with each face's box and its top emotion and score, as PNG bytes.
    static func annotate(_ image: Image, boxes: [Box], probabilities: [[Float]], names: [String]) -> [UInt8] {
        var canvas = Canvas(width: image.width, height: image.height)
        if image.channels == 3 {
            canvas.pixels = image.pixels
        } else {
            canvas.pixels = image.pixels.flatMap { [$0, $0, $0] }
        }
        let colors = [RGB(230, 60, 60), RGB(150, 100, 40), RGB(150, 60, 200), RGB(40, 200, 80), RGB(60, 120, 230), RGB(240, 200, 30), RGB(200, 200, 200)]
        let scale = max(1, min(image.width, image.height) / 300)
        for (box, p) in zip(boxes, probabilities) {
            let best = argmax(p)
            let color = colors[best % colors.count]
            for t in 0..<max(1, scale) {
                canvas.strokeRect(x: box.x - t, y: box.y - t, width: box.width + 2 * t, height: box.height + 2 * t, color: color)
            }
            let label = "\(names[best]) \(String(format: "%.2f", p[best]))"
            let w = Canvas.textWidth(label, scale: scale) + 4
            let ty = box.y >= 12 * scale ? box.y - 11 * scale : box.y + box.height + 1
            let lx = max(0, min(box.x - scale, image.width - w))  // inside the image
            canvas.fillRect(x: lx, y: ty, width: w, height: 11 * scale, color: color)
            canvas.text(label, x: Double(lx + 2), y: Double(ty + 8 * scale), color: .black, scale: scale)
        }
        return canvas.png()
    }

    /// Unique output file names from input paths: the base name's stem + suffix + ".png",
    /// numbered when two inputs share a stem.
    struct OutputNames {
        var used: [String: String] = [:]   // key -> input path
        mutating func name(for file: String, suffix: String) -> String {
            let stem = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            var n = 1
            while true {
                let candidate = (n == 1 ? stem : "\(stem)-\(n)") + suffix + ".png"
                if let owner = used[candidate], owner != file { n += 1; continue }
                used[candidate] = file
                return candidate
            }
        }
    }

    // MARK: Output

    final class Output {
        let format: Format
        let names: [String]
        var rows: [Record] = []
        init(format: Format, classNames: [String]) { self.format = format; names = classNames }

        func begin() {
            if format == .csv {
                Console.out((["file", "face", "status", "x", "y", "width", "height", "emotion", "score"] + names + ["label", "error"]).map(csvField).joined(separator: ",") + "\n")
            }
        }

        func write(_ r: Record) {
            switch format {
            case .jsonl:
                var j: [String: Any] = ["file": r.file, "status": r.status.rawValue]
                if r.status == .face, let b = r.box {
                    let best = argmax(r.probabilities)
                    j["face"] = r.face
                    j["box"] = [b.x, b.y, b.width, b.height]
                    j["emotion"] = names[best]
                    j["score"] = rounded(r.probabilities[best])
                    j["probabilities"] = Dictionary(uniqueKeysWithValues: zip(names, r.probabilities.map(rounded)))
                }
                if let l = r.label { j["label"] = l }
                if let e = r.error { j["error"] = e }
                let data = (try? JSONSerialization.data(withJSONObject: j, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
                Console.out(String(decoding: data, as: UTF8.self) + "\n")
            case .csv:
                var f = [r.file, r.status == .face ? String(r.face) : "", r.status.rawValue]
                if r.status == .face, let b = r.box {
                    let best = argmax(r.probabilities)
                    f += [b.x, b.y, b.width, b.height].map(String.init) + [names[best], String(format: "%.6f", r.probabilities[best])]
                    f += r.probabilities.map { String(format: "%.6f", $0) }
                } else {
                    f += Array(repeating: "", count: 6 + names.count)
                }
                f += [r.label ?? "", r.error ?? ""]
                Console.out(f.map(csvField).joined(separator: ",") + "\n")
            case .table:
                rows.append(r)
            }
        }

        func end() {
            guard format == .table, !rows.isEmpty else { return }
            let fileW = min(max(rows.map(\.file.count).max() ?? 4, 4), 60)
            var s = "FILE".padding(toLength: fileW, withPad: " ", startingAt: 0) + "  FACE  BOX                   EMOTION    SCORE  "
            s += names.map { String($0.prefix(5)).padding(toLength: 5, withPad: " ", startingAt: 0) }.joined(separator: " ") + "\n"
            for r in rows {
                var line = r.file.count > fileW ? "…" + r.file.suffix(fileW - 1) : r.file.padding(toLength: fileW, withPad: " ", startingAt: 0)
                switch r.status {
                case .face:
                    let best = argmax(r.probabilities)
                    let b = r.box.map { "[\($0.x), \($0.y), \($0.width), \($0.height)]" } ?? ""
                    line += "  " + String(r.face).padding(toLength: 4, withPad: " ", startingAt: 0) + "  " + b.padding(toLength: 20, withPad: " ", startingAt: 0)
                    line += "  " + names[best].padding(toLength: 9, withPad: " ", startingAt: 0) + String(format: "  %.3f  ", r.probabilities[best])
                    line += r.probabilities.map { String(format: "%.3f", $0) }.joined(separator: " ")
                    if let l = r.label { line += "  (label \(l))" }
                case .noFace: line += "  -     no face"
                case .error: line += "  -     error: \(r.error ?? "")"
                }
                s += line + "\n"
            }
            Console.out(s)
        }

        /// A probability with 7 significant digits (a float's precision), for readable JSON.
        func rounded(_ v: Float) -> Double { Double(String(format: "%.7g", Double(v))) ?? Double(v) }

        func csvField(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
    }

    // MARK: FER2013 CSV

    struct Face {
        var source: String
        var pixels: [UInt8]
        var label: Int? = nil
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
