// The Figure 12 study's part of `fergc reproduce`'s README: one table row per technique (the
// paper's figure, fergc as the paper's code computed it, fergc as intended, the difference to
// the baseline, and the class the as-paper model answers most), the budget, the share of each
// class in the evaluated faces (what a model that answers one class scores), and the bar chart
// (OUT/<chart>.svg and .png). A row without a result is "not run": no number, no bar.

import Foundation
import GraphIR
import Training

/// The study's rows of one technique, in the manifest's order of first appearance.
struct StudyTechnique {
    var name: String
    var baseline: PaperManifest.Row?
    var intended: PaperManifest.Row?
    var paper: PaperManifest.Row?

    /// The row whose inputs are what the paper's code fed its model: the truncated row, or the
    /// row itself when the technique's output is integral (nothing to truncate) or the baseline.
    var asPaper: PaperManifest.Row? { paper ?? intended ?? baseline }
    var asIntended: PaperManifest.Row? { intended ?? baseline }
    var paperAccuracy: Double? { (intended ?? baseline)?.paperAccuracy ?? paper?.paperAccuracy }

    static func all(_ m: PaperManifest) -> [StudyTechnique] {
        var out: [StudyTechnique] = []
        for row in m.rows {
            guard let role = row.study else { continue }
            let name = role.variant == "baseline" ? "none (baseline)" : role.technique
            var i = out.firstIndex { $0.name == name } ?? out.count
            if i == out.count { out.append(StudyTechnique(name: name)); i = out.count - 1 }
            switch role.variant {
            case "baseline": out[i].baseline = row
            case "intended": out[i].intended = row
            default: out[i].paper = row
            }
        }
        return out
    }
}

/// The classes a model answered and the classes of the faces, from a confusion matrix (rows:
/// true classes, columns: predictions).
struct ClassShares {
    let total: Int
    let predicted: [Int]
    let actual: [Int]

    init?(_ counts: [[Int]]?) {
        guard let c = counts, !c.isEmpty else { return nil }
        actual = c.map { $0.reduce(0, +) }
        predicted = (0..<c[0].count).map { j in c.reduce(0) { $0 + (j < $1.count ? $1[j] : 0) } }
        total = actual.reduce(0, +)
        guard total > 0 else { return nil }
    }

    /// The class answered most and the share of faces it was answered for.
    var top: (cls: Int, share: Double) {
        let k = predicted.indices.max { predicted[$0] < predicted[$1] }!
        return (k, Double(predicted[k]) / Double(total))
    }
    /// The most frequent true class and its share.
    var commonest: (cls: Int, share: Double) {
        let k = actual.indices.max { actual[$0] < actual[$1] }!
        return (k, Double(actual[k]) / Double(total))
    }
    func share(of k: Int) -> Double { Double(actual[k]) / Double(total) }
    static func name(_ k: Int) -> String { k < Emotion.names.count ? Emotion.names[k] : "class \(k)" }
}

private func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", $0 * 100) } ?? "—" }

/// A share of the answers: "100%" only when it is all of them (99.96% is "99.9%").
private func answerShare(_ p: Double) -> String { p >= 1 ? "100%" : String(format: "%.1f%%", min(p * 100, 99.9)) }

/// The paper's figures as printed (33.15%, 53.5%).
private func paperFigure(_ v: Double?) -> String {
    guard let v else { return "—" }
    var s = String(format: "%.2f", v)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s + "%"
}

/// The bar chart: per technique, the paper's figure, fergc as the paper computed it and fergc
/// as intended (PublicTest); a vertical line at the share of the commonest class.
func studyChart(_ m: PaperManifest, results: [String: RowResult]) -> (svg: String, png: [UInt8]) {
    let techniques = StudyTechnique.all(m)
    func value(_ row: PaperManifest.Row?) -> Double? { row.flatMap { results[$0.name]?.publicTest }.map { $0 * 100 } }
    let groups = techniques.map { t in
        BarGroup(label: t.name, values: [t.paperAccuracy, value(t.asPaper), value(t.asIntended)],
                 missing: ["no figure in the paper", t.asPaper == nil ? "no such row" : "not run", t.asIntended == nil ? "no such row" : "not run"])
    }
    let series = [(name: "paper (its test set)", color: "#9e9e9e"), (name: "fergc as the paper computed it", color: "#e6862e"),
                  (name: "fergc as intended", color: "#2f6db5")]
    var reference: BarReference?
    if let shares = techniques.compactMap({ t in t.asPaper.flatMap { ClassShares(results[$0.name]?.confusionPublic) } }).first {
        let c = shares.commonest
        reference = BarReference(value: c.share * 100, label: String(format: "always %@: %.2f%%", ClassShares.name(c.cls), c.share * 100))
    }
    let budgets = Set(techniques.flatMap { [$0.asPaper, $0.asIntended] }.compactMap { $0.flatMap { results[$0.name]?.epochs } })
    let title = "\(m.study?.title ?? "Preprocessing study"), PublicTest"
        + (budgets.count == 1 ? ", \(budgets.first!) epoch\(budgets.first! == 1 ? "" : "s")" : "")
    return (barChartSVG(title: title, series: series, groups: groups, reference: reference),
            barChartPNG(title: title, series: series, groups: groups, reference: reference))
}

/// The study's section of the README.
func studyReport(_ m: PaperManifest, results: [String: RowResult], settings s: ReproduceCommand.Settings) -> String {
    guard let study = m.study else { return "" }
    let techniques = StudyTechnique.all(m)
    let rows = m.rows.filter { $0.study != nil }
    var out = "## \(study.title)\n\n"
    if let setup = study.setup { out += "Setup of the study (model files, techniques, the face through every technique): [\(setup)](\(relative(setup, from: s.out))).\n\n" }

    // The budget: what the model files say, and what the finished rows ran.
    var fileEpochs: [String: Int] = [:]
    for row in rows {
        if let model = row.model, let e = try? loadGraph(repoPath(model)).training?.epochs { fileEpochs[row.name] = row.epochs ?? e }
    }
    let planned = Set(fileEpochs.values)
    out += "Budget: "
    out += planned.count == 1 ? "**\(planned.first!) epochs** for every row" : "epochs per row: " + rows.map { "\($0.name) \(fileEpochs[$0.name].map(String.init) ?? "?")" }.joined(separator: ", ")
    out += " (each row's model file; the same layers, recipe and seed in every row)."
    let ran = rows.compactMap { r in results[r.name]?.epochs.map { (r.name, $0) } }
    if !ran.isEmpty {
        let differing = ran.filter { fileEpochs[$0.0] != $0.1 }
        out += differing.isEmpty ? " Every finished row ran that budget." : " Rows that ran another budget (`--epochs`): " + differing.map { "`\($0.0)` \($0.1)" }.joined(separator: ", ") + "."
    }
    out += "\n\nAccuracy is `fergc eval` of each row's plan on PublicTest"
    let hasPrivate = rows.contains { (results[$0.name]?.privateImages ?? 0) > 0 }
    out += hasPrivate ? " (PrivateTest, the paper's test set, in parentheses)" : " (this data has no PrivateTest, the paper's test set)"
    out += "; the paper's figures are its test accuracy after 100 epochs. \"As the paper computed it\" feeds the model what the paper's "
    out += "code did: the technique's result truncated toward zero (it was written back into an int64 array); for the techniques "
    out += "whose result is integral (equalize, the thresholds) that is the intended row itself.\n\n"
    out += "![\(study.title)](\(study.chart).svg)\n\n"

    func acc(_ row: PaperManifest.Row?) -> String {
        guard let row else { return "—" }
        guard let r = results[row.name] else { return "not run" }
        return "**\(pct(r.publicTest))**" + (r.privateImages > 0 ? " (\(pct(r.privateTest)))" : "")
    }
    let baseline = techniques.first { $0.baseline != nil }?.baseline.flatMap { results[$0.name]?.publicTest }
    out += "| technique | rows | paper | fergc as the paper computed it | fergc as intended | intended − baseline | most answered class (as the paper computed it) |\n"
    out += "|---|---|---:|---:|---:|---:|---|\n"
    for t in techniques {
        let names = [t.baseline, t.intended, t.paper].compactMap { $0 }.map { "`\($0.name)`" }.joined(separator: ", ")
        let asPaper = t.paper != nil ? acc(t.paper) : (t.asPaper.map { results[$0.name] == nil ? "not run" : "= as intended" } ?? "—")
        var delta = "—"
        if t.baseline == nil, let v = t.intended.flatMap({ results[$0.name]?.publicTest }), let b = baseline {
            delta = String(format: "%+.2f", (v - b) * 100)
        }
        var most = "not run"
        if let row = t.asPaper, let r = results[row.name] {
            most = "—"
            if let sh = ClassShares(r.confusionPublic) {
                let top = sh.top
                most = String(format: "%@ for %@ of faces (%@ is %.2f%% of them)", ClassShares.name(top.cls), answerShare(top.share),
                              ClassShares.name(top.cls), sh.share(of: top.cls) * 100)
            }
        }
        out += "| \(t.name) | \(names) | \(paperFigure(t.paperAccuracy)) | \(asPaper) | \(acc(t.asIntended)) | \(delta) | \(most) |\n"
    }

    let walls = rows.compactMap { results[$0.name]?.wallSeconds }
    if !walls.isEmpty {
        let total = Int(walls.reduce(0, +).rounded()) / 60
        out += "\nTraining time: \(total / 60) h \(String(format: "%02d", total % 60)) min for the \(walls.count) finished row\(walls.count == 1 ? "" : "s") of \(rows.count)"
        out += " (\(Int((walls.reduce(0, +) / Double(walls.count) / 60).rounded())) min a row).\n"
    }

    // What answering one class scores, counted from the evaluated faces' labels.
    let any = rows.compactMap { results[$0.name] }.first { $0.confusionPublic != nil }
    if let r = any, let pub = ClassShares(r.confusionPublic) {
        let c = pub.commonest
        out += String(format: "\nA model that answers one class for every face scores that class's share of the faces. In PublicTest (%d faces, counted from the labels), the commonest class is %@: %d faces, %.2f%%",
                      pub.total, ClassShares.name(c.cls), pub.actual[c.cls], c.share * 100)
        if let priv = ClassShares(r.confusionPrivate) {
            let p = priv.commonest
            out += String(format: "; in PrivateTest (%d faces) it is %@: %d faces, %.2f%%", priv.total, ClassShares.name(p.cls), priv.actual[p.cls], p.share * 100)
        }
        out += ".\n\n"
        // Each truncated row beside that share: a model fed (nearly) all-zero faces answers a constant.
        for t in techniques {
            guard let row = t.paper, let res = results[row.name], let sh = ClassShares(res.confusionPublic), let a = res.publicTest else { continue }
            let top = sh.top, share = sh.share(of: top.cls)
            out += String(format: "- `%@`: answers %@ for %@ of the faces; accuracy %.2f%%, %@'s share %.2f%%", row.name, ClassShares.name(top.cls), answerShare(top.share), a * 100, ClassShares.name(top.cls), share * 100)
            out += top.share >= 1 ? ": a constant answer.\n" : ".\n"
        }
        out += "\n"
    } else {
        out += "\n"
    }
    for n in study.notes ?? [] { out += "- \(n)\n" }
    if !(study.notes ?? []).isEmpty { out += "\n" }

    let done = rows.filter { results[$0.name]?.confusionPublic != nil }
    if !done.isEmpty {
        out += "### Confusion matrices of the study (PublicTest)\n\n"
        let perLine = 4
        out += "|" + String(repeating: " |", count: perLine) + "\n|" + String(repeating: "---|", count: perLine) + "\n"
        for start in stride(from: 0, to: done.count, by: perLine) {
            let cells = done[start..<min(start + perLine, done.count)].map { "![\($0.name)](\($0.name)-confusion-PublicTest.png)" }
            out += "| " + (cells + Array(repeating: "", count: perLine - cells.count)).joined(separator: " | ") + " |\n"
        }
        out += "\n"
    }
    return out
}
