// The manifest `fergc reproduce` runs (Models/paper.json): the paper's rows, the model file
// each trains, which row initializes which, the paper's figures, how the ensemble is built,
// and what differs from the paper. A row's result (RowResult) is written beside the table.

import Foundation

struct PaperManifest: Codable {
    var title: String
    /// The pretrained weights rows may start from ("init": "pretrained").
    var pretrained: Pretrained?
    var rows: [Row]
    /// Markdown bullets for "What differs from the paper".
    var differences: [String]

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
    }

    struct Adopted: Codable {
        var plan: String
        var report: String
        var epochs: Int
        var wallSeconds: Double
        var commands: [String]
    }

    static func load(_ path: String) throws -> PaperManifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read the manifest") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let m: PaperManifest
        do { m = try decoder.decode(PaperManifest.self, from: data) } catch { throw CLIError("\(path): not a reproduce manifest: \(error)") }
        var names = Set<String>()
        for r in m.rows {
            guard names.insert(r.name).inserted else { throw CLIError("\(path): row '\(r.name)' appears twice") }
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
        return m
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
