// The table `fergc reproduce` writes (docs/results/paper/README.md): the paper's figures beside
// fergc's, the confusion matrices side by side, the exact commands and what differs from the
// paper. A row without a result is "not run", never a number.

import Foundation
import GraphIR

func paperReport(_ m: PaperManifest, results: [String: RowResult], settings s: ReproduceCommand.Settings) -> String {
    func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", $0 * 100) } ?? "—" }
    func wall(_ seconds: Double?) -> String {
        guard let t = seconds else { return "—" }
        let m = Int(t.rounded()) / 60
        return m >= 60 ? String(format: "%d h %02d min", m / 60, m % 60) : "\(m) min \(Int(t.rounded()) % 60) s"
    }
    var out = "# \(m.title)\n\n"
    out += "Written by `fergc reproduce` from `\(s.manifestPath)`; rerun it to refresh (finished rows are kept, "
    out += "unfinished ones resume). Accuracy is `fergc eval` of each row's plan; the paper's figures are its test accuracy and "
    out += "Keras model size.\n\n"
    let data = Set(results.values.map(\.data))
    if !data.isEmpty { out += "Data: " + data.sorted().map { "`\($0)`" }.joined(separator: ", ") + ".\n\n" }
    out += "| row | paper | paper accuracy | fergc PublicTest | fergc PrivateTest | epochs | wall time | plan size | paper size | plan values |\n"
    out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for row in m.rows where row.study == nil {
        let paperAcc = row.paperAccuracy.map { String(format: "%.1f%%", $0) } ?? "—"
        let paperSize = row.paperSizeMb.map { String(format: "%.1f MB", $0) } ?? "—"
        let label = row.paperRow ?? "(helper row)"
        guard let r = results[row.name] else {
            out += "| \(row.name) | \(label) | \(paperAcc) | not run | not run | not run | not run | not run | \(paperSize) | not run |\n"
            continue
        }
        let size = String(format: "%.1f MB", Double(r.planBytes) / 1e6) + (r.weightsDtype == "f16" ? " (f16)" : "")
        let priv = r.privateImages > 0 ? pct(r.privateTest) : "no PrivateTest rows"
        out += "| \(row.name) | \(label) | \(paperAcc) | **\(pct(r.publicTest))** | \(priv) | \(r.epochs.map(String.init) ?? "—") | \(wall(r.wallSeconds)) | \(size) | \(paperSize) | \(grouped(r.parameters)) |\n"
    }

    let done = m.rows.filter { $0.study == nil && results[$0.name]?.confusionPublic != nil }
    if !done.isEmpty {
        out += "\n## Confusion matrices (PublicTest)\n\n"
        out += "| " + done.map(\.name).joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: done.count) + "\n"
        out += "| " + done.map { "![\($0.name)](\($0.name)-confusion-PublicTest.png)" }.joined(separator: " | ") + " |\n"
    }

    if !ReproduceCommand.curveSeries(m, results: results).isEmpty {
        out += "\n## Learning curves\n\n"
        out += "Validation (PublicTest) accuracy after each epoch, for the rows whose run directory recorded it (a fine-tuned "
        out += "row's epoch 1 follows its starting row's best checkpoint); the numbers are under each row below.\n\n"
        out += "![learning curves](curves.png)\n"
    }

    if m.study != nil {
        var study = studyReport(m, results: results, settings: s)
        while study.hasSuffix("\n") { study.removeLast() }
        out += "\n" + study + "\n"
    }

    out += "\n## Rows\n\n"
    for row in m.rows {
        out += "### \(row.name)\n\n"
        if let p = row.paperRow { out += "Paper: \(p).\n" }
        if let model = row.model { out += "Model: `\(model)`" + (row.faithfulModel.map { " (a faster recipe of the paper's `\($0)`)" } ?? "") + ".\n" }
        if let from = row.initFrom {
            out += "Starts from: " + (from == "pretrained" ? "`\(m.pretrained?.path ?? "")`" : "the best checkpoint of row `\(from.dropFirst(4))`") + ".\n"
        }
        if let members = row.ensemble { out += "Ensemble of rows: " + members.map { "`\($0)`" }.joined(separator: ", ") + " (mean of their probabilities).\n" }
        if let a = row.adopt { out += "Trained before `reproduce` existed; its report: [\(a.report)](\(relative(a.report, from: s.out))).\n" }
        if let n = row.notes { out += n + "\n" }
        guard let r = results[row.name] else {
            out += "\nNot run.\n\n"
            continue
        }
        out += "\nPlan `\(r.planPath)`, \(r.planBytes) bytes (\(r.weightsDtype)); PublicTest \(pct(r.publicTest)) of \(r.publicImages) faces"
        out += r.privateImages > 0 ? ", PrivateTest \(pct(r.privateTest)) of \(r.privateImages).\n" : ".\n"
        if let curve = r.curve, !curve.isEmpty {
            out += "Validation accuracy by epoch: " + curve.map { String(format: "%.1f", $0 * 100) }.joined(separator: ", ")
            out += r.bestEpoch.map { " (best: epoch \($0))" } ?? ""
            out += ".\n"
        }
        out += "\n```sh\n" + r.commands.joined(separator: "\n") + "\n```\n\n"
    }

    out += "## What differs from the paper\n\n"
    if let p = m.pretrained { out += "- Pretrained weights: `\(p.path)`. \(p.origin)\n" }
    for d in m.differences { out += "- \(d)\n" }
    return out
}

/// `path` (relative to the repository) as seen from the directory `dir`.
func relative(_ path: String, from dir: String) -> String {
    guard !dir.hasPrefix("/") else { return path }
    let depth = dir.split(separator: "/").count
    return String(repeating: "../", count: depth) + path
}
