// fergc bench-detect: milliseconds per image for face detection alone and for the whole
// predict path (decode, gray, detect, crop, classify).

import Foundation
import ImageIO
import Runtime
import Vision

enum BenchDetectCommand {
    static let spec = CommandSpec(
        name: "bench-detect",
        usage: "bench-detect IMAGE... [--plan M.plan] [--rounds N] [--threads N] [--cascade FILE] [--json]",
        summary: "Time face detection (and, with --plan, the whole predict path) per image.",
        options: [
            OptionSpec(name: "plan", kind: .value("M.plan"), help: "Also time decode + detect + crop + classify with this plan."),
            OptionSpec(name: "rounds", kind: .value("N"), help: "Timed runs per image after one warm-up (default 10); the median is reported."),
            OptionSpec(name: "threads", kind: .value("N"), help: "Threads for detection (default: the online processors)."),
            OptionSpec(name: "cascade", kind: .value("FILE"), help: "The Haar cascade (default \(FaceDetector.defaultCascadePath))."),
            OptionSpec(name: "json", kind: .flag, help: "Print JSON: per image, faces, detect_ms and predict_ms (medians) and every round."),
        ],
        details: """
        Detection follows OpenCV 4's detectMultiScale with scale 1.1, 5 neighbours and 30 px
        minimum faces. Times are wall-clock medians over --rounds runs after a warm-up; use a
        release build (swift build -c release). Tools/bench/detect_compare.sh runs this beside
        OpenCV's detectMultiScale in interleaved rounds.

        EXAMPLES:
          fergc bench-detect ../shared/photos/fer-training-scene.jpg --threads 2
          fergc bench-detect photo.jpg --plan Models/trained/vgg_tuned.plan --json
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard !a.positional.isEmpty else { throw UsageError(message: "give at least one image", command: spec.name) }
        let rounds = try a.int("rounds", spec.name, range: 1...10_000) ?? 10
        var options = DetectionOptions()
        options.threads = try a.int("threads", spec.name, range: 1...64) ?? 0
        let detector: FaceDetector
        do { detector = try FaceDetector(path: a.value("cascade") ?? FaceDetector.defaultCascadePath) } catch { throw CLIError(error.description) }
        var session: Session?
        if let planPath = a.value("plan") {
            do { session = try Session(try LoadedPlan(path: planPath)) } catch { throw CLIError("\(error)") }
        }
        func now() -> Double { Date().timeIntervalSinceReferenceDate * 1000 }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        var rows: [[String: Any]] = []
        var text = ""
        for path in a.positional {
            let gray: Image
            do { gray = try ImageIO.read(path: path).gray() } catch { throw CLIError(error.description) }
            var faces: [Box] = []
            var detectMs: [Double] = [], predictMs: [Double] = []
            for r in 0...rounds {
                let t0 = now()
                faces = try gray.withGrayView { try detector.detect($0, options: options) }
                if r > 0 { detectMs.append(now() - t0) }
            }
            if let session {
                for r in 0...rounds {
                    let t0 = now()
                    let image = try ImageIO.read(path: path).gray()
                    _ = try image.withGrayView { try session.detectAndClassify($0, detector: detector, options: options) }
                    if r > 0 { predictMs.append(now() - t0) }
                }
            }
            var row: [String: Any] = ["image": path, "width": gray.width, "height": gray.height, "faces": faces.count,
                                      "detect_ms": median(detectMs), "detect_rounds_ms": detectMs,
                                      "boxes": faces.map { [$0.x, $0.y, $0.width, $0.height] }]
            text += "\(path) (\(gray.width)x\(gray.height)): \(faces.count) face(s), detect \(String(format: "%.1f", median(detectMs))) ms"
            if !predictMs.isEmpty {
                row["predict_ms"] = median(predictMs); row["predict_rounds_ms"] = predictMs
                text += ", whole predict path \(String(format: "%.1f", median(predictMs))) ms"
            }
            text += " (median of \(rounds))\n"
            rows.append(row)
        }
        if a.flag("json") {
            Console.out(try jsonText(["threads": options.threads > 0 ? options.threads : onlineProcessors(), "rounds": rounds, "images": rows]))
        } else {
            Console.out(text)
        }
    }
}
