// The manifest `fergc reproduce` runs (Models/paper.json): the paper's rows, the model file
// each trains, which row initializes which, the paper's figures, how the ensemble is built,
// and what differs from the paper. A row's result (RowResult) is written beside the table.

import Foundation
import Runtime

struct PaperManifest: Codable {
    var title: String
    /// The pretrained weights rows may start from ("init": "pretrained").
    var pretrained: Pretrained?
    var rows: [Row]
    /// Markdown bullets for "What differs from the paper".
    var differences: [String]
    /// The Figure 12 study's own section (its rows are rows with a `study` role).
    var study: Study?

    /// The preprocessing study (Figure 12): its section's title, the file stem of its bar chart
    /// (SVG and PNG beside the table), where its setup is described, and notes under its table.
    struct Study: Codable {
        var title: String
        var chart: String
        var setup: String?
        var notes: [String]?
    }

    /// A study row's place in the study's table: its technique and which variant of it it is.
    struct StudyRole: Codable {
        var technique: String
        /// "baseline" (no preprocessing), "intended" (the technique as meant), or "paper" (as the
        /// paper's code computed it: the float result truncated toward zero).
        var variant: String
        static let variants = ["baseline", "intended", "paper"]
    }

    struct Pretrained: Codable {
        var path: String
        var origin: String
    }

    struct Row: Codable {
        var name: String
        /// The paper's row label; nil for helper rows (an ensemble member that is not a paper row).
        var paperRow: String?
        var paperAccuracy: Double?
        var paperSizeMb: Double?
        /// The model file trained (a faster variant where the paper's recipe cannot fit).
        var model: String?
        /// The paper's recipe, when `model` is a faster variant of it.
        var faithfulModel: String?
        /// "pretrained" (the manifest's weights) or "row:NAME" (that row's best checkpoint).
        var initFrom: String?
        var seed: UInt64?
        var epochs: Int?
        /// "f16" to store the plan's weights as IEEE half.
        var weightsDtype: String?
        /// Where the row's final plan goes (relative to the repository); nil: in its run directory.
        var plan: String?
        /// Rows trained before `reproduce` existed: their committed plan and report.
        var adopt: Adopted?
        /// Ensemble rows: the member rows, averaged.
        var ensemble: [String]?
        var notes: String?
        /// Set for the rows of the preprocessing study, which have their own table.
        var study: StudyRole?
    }

    struct Adopted: Codable {
        var plan: String
        var report: String
        var epochs: Int
        var wallSeconds: Double
        var commands: [String]
    }

    static func load(_ path: String) throws -> PaperManifest {
        let data: Data
        do { data = Data(try readRegularFile(path, limit: 16 << 20)) } catch { throw CLIError("cannot read the manifest: \(error)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let m: PaperManifest
        do { m = try decoder.decode(PaperManifest.self, from: data) } catch { throw CLIError("\(path): not a reproduce manifest: \(error)") }
        var names = Set<String>()
        var roles = Set<String>()
        for r in m.rows {
            guard names.insert(r.name).inserted else { throw CLIError("\(path): row '\(r.name)' appears twice") }
            // Names become paths (RUNS/NAME, OUT/rows/NAME.json): words of letters, digits, '_', '-'
            // and '.', joined by '/' (a group such as "study/sobel").
            let parts = r.name.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.allSatisfy({ p in !p.isEmpty && p != "." && p != ".." && p.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) } }) else {
                throw CLIError("\(path): row name '\(r.name)' is not words of letters, digits, '_', '-', '.' joined by '/'")
            }
            if let role = r.study {
                guard PaperManifest.StudyRole.variants.contains(role.variant) else {
                    throw CLIError("\(path): row '\(r.name)': study variant '\(role.variant)' is not one of \(PaperManifest.StudyRole.variants.joined(separator: ", "))")
                }
                let key = role.variant == "baseline" ? "baseline" : role.technique + "\u{0}" + role.variant
                guard roles.insert(key).inserted else {
                    throw CLIError("\(path): row '\(r.name)': a second \(role.variant) row\(role.variant == "baseline" ? "" : " of '\(role.technique)'")")
                }
            }
            let kinds = [r.model != nil, r.adopt != nil, r.ensemble != nil].filter { $0 }.count
            guard kinds == 1 else { throw CLIError("\(path): row '\(r.name)' needs exactly one of model, adopt, ensemble") }
            if let from = r.initFrom, from != "pretrained", !m.rows.contains(where: { "row:" + $0.name == from }) {
                throw CLIError("\(path): row '\(r.name)': init '\(from)' is neither 'pretrained' nor 'row:<a row>'")
            }
            if r.initFrom == "pretrained", m.pretrained == nil { throw CLIError("\(path): row '\(r.name)' starts from the pretrained weights, but the manifest names none") }
            for member in r.ensemble ?? [] where !m.rows.contains(where: { $0.name == member }) {
                throw CLIError("\(path): row '\(r.name)': ensemble member '\(member)' is not a row")
            }
        }
        if m.rows.contains(where: { $0.study != nil }), m.study == nil {
            throw CLIError("\(path): rows have a study role but the manifest has no \"study\" section (title, chart)")
        }
        for r in m.rows where r.study?.variant == "paper" {
            let t = r.study!.technique
            guard m.rows.contains(where: { $0.study?.technique == t && $0.study?.variant == "intended" }) else {
                throw CLIError("\(path): row '\(r.name)': technique '\(t)' has a paper row but no intended row")
            }
        }
        return m
    }

    /// The rows a `--rows` word selects: the row of that name, or the rows of that group (the
    /// rows whose names start with "WORD/"); nil when none.
    func rows(selectedBy word: String) -> [String]? {
        let names = rows.map(\.name).filter { $0 == word || $0.hasPrefix(word + "/") }
        return names.isEmpty ? nil : names
    }
}

/// What a finished row measured; written to OUT/rows/NAME.json, read back for the table.
struct RowResult: Codable {
    var name: String
    var data: String
    var publicTest: Double?
    var privateTest: Double?
    var publicImages: Int
    var privateImages: Int
    var confusionPublic: [[Int]]?
    /// The PrivateTest confusion matrix, when the data has that split (the study's report reads
    /// the most predicted class and each class's share from the matrices).
    var confusionPrivate: [[Int]]?
    var epochs: Int?
    var bestEpoch: Int?
    var wallSeconds: Double?
    var planPath: String
    var planBytes: Int
    var parameters: Int
    var weightsDtype: String
    var commands: [String]
    /// Validation accuracy per epoch (the learning curve), when trained here.
    var curve: [Double]?
}
