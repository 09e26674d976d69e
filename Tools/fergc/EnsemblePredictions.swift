// fergc ensemble --predictions: what an ensemble of trained members would score, from each
// member's `fergc eval --predictions` file, without running any member again: each member's
// accuracy, how often it agrees with the first, the weighted mean's accuracy (what
// `fergc ensemble` + `fergc eval` give, up to the files' six decimals), and on request every
// equal-weight combination. Choosing members from these figures is choosing on the split the
// files were made on; the command says so.

import Foundation
import Passes
import Runtime
import Training

struct MemberPredictions {
    var path: String
    var labels: [Int]
    var probabilities: [[Double]]   // one row of 7 per face

    /// The largest file read (a 35,887-face split is about 3 MB; this is a hundred times more).
    static let maxFileBytes = 512 << 20

    static func read(_ path: String) throws -> MemberPredictions {
        let bytes: [UInt8]
        do { bytes = try readRegularFile(path, limit: maxFileBytes) } catch { throw CLIError("\(path): \(error)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw CLIError("\(path): not UTF-8 text") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        if lines.last?.isEmpty == true { lines.removeLast() }
        let header = EvalCommand.predictionsHeader
        guard let first = lines.first, first == header else {
            throw CLIError("\(path):1: not a predictions file of fergc eval --predictions (expected the header '\(header)')")
        }
        var out = MemberPredictions(path: path, labels: [], probabilities: [])
        for (k, line) in lines.enumerated().dropFirst() {
            let where_ = "\(path):\(k + 1)"
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == 3 + Emotion.names.count else {
                throw CLIError("\(where_): \(fields.count) fields, expected \(3 + Emotion.names.count) (face, label, predicted and the 7 probabilities)")
            }
            guard let face = Int(fields[0]), face == k - 1 else { throw CLIError("\(where_): face '\(fields[0])', expected \(k - 1) (faces in order from 0)") }
            guard let label = Int(fields[1]), (0..<Emotion.names.count).contains(label) else {
                throw CLIError("\(where_): label '\(fields[1])' is not a class 0-\(Emotion.names.count - 1)")
            }
            var row: [Double] = []
            for (c, f) in fields.dropFirst(3).enumerated() {
                guard let p = Double(f), p.isFinite, p >= 0, p <= 1 else {
                    throw CLIError("\(where_): the probability of \(Emotion.names[c]) is '\(f)', not a number in [0, 1]")
                }
                row.append(p)
            }
            out.labels.append(label)
            out.probabilities.append(row)
        }
        guard !out.labels.isEmpty else { throw CLIError("\(path): no faces") }
        return out
    }
}

enum EnsemblePredictions {
    static func argmax(_ p: [Double]) -> Int { p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) }! }

    static func accuracy(_ rows: [[Double]], _ labels: [Int]) -> Double {
        Double(zip(rows, labels).filter { argmax($0.0) == $0.1 }.count) / Double(labels.count)
    }

    /// The weighted mean of the members' rows (weights normalized to sum 1).
    static func mean(_ members: [MemberPredictions], weights: [Double]) -> [[Double]] {
        let w = normalizedWeights(weights) ?? weights.map { _ in 1 / Double(weights.count) }
        return members[0].labels.indices.map { i in
            (0..<Emotion.names.count).map { c in zip(members, w).reduce(0) { $0 + $1.0.probabilities[i][c] * $1.1 } }
        }
    }

    static func main(_ a: ParsedArguments, weights: [Double]?, command: String) throws {
        guard a.positional.count >= 2 else {
            throw UsageError(message: "expected at least two predictions files, got \(a.positional.count)", command: command)
        }
        if let weights, weights.count != a.positional.count {
            throw UsageError(message: "--weights has \(weights.count) values for \(a.positional.count) members", command: command)
        }
        if a.flag("combinations"), a.positional.count > maxCombinationMembers {
            throw UsageError(message: "--combinations takes at most \(maxCombinationMembers) members (\(combinationCount(maxCombinationMembers)) means), got \(a.positional.count) (\(combinationCount(a.positional.count)) means)", command: command)
        }
        let w = weights ?? Array(repeating: 1, count: a.positional.count)
        guard w.reduce(0, +) > 0 else { throw UsageError(message: "--weights are all zero", command: command) }
        let members = try a.positional.map(MemberPredictions.read)
        for m in members.dropFirst() {
            guard m.labels.count == members[0].labels.count else {
                throw CLIError("\(m.path) has \(m.labels.count) faces, \(members[0].path) \(members[0].labels.count): not predictions of the same split")
            }
            if let i = m.labels.indices.first(where: { m.labels[$0] != members[0].labels[$0] }) {
                throw CLIError("\(m.path):\(i + 2): face \(i) is labelled \(m.labels[i]), in \(members[0].path) \(members[0].labels[i]): not predictions of the same split")
            }
        }
        let labels = members[0].labels
        let width = members.map(\.path.count).max()!
        let guesses = members.map { $0.probabilities.map(argmax) }
        var text = "\(labels.count) faces; accuracy of each member (agreement with the first, and how often either is right):\n"
        for (k, m) in members.enumerated() {
            text += "  " + m.path.padding(toLength: width, withPad: " ", startingAt: 0)
            text += String(format: "  %6.2f%%", accuracy(m.probabilities, labels) * 100)
            if k > 0 {
                let either = labels.indices.filter { guesses[k][$0] == labels[$0] || guesses[0][$0] == labels[$0] }.count
                text += String(format: "  agrees %5.1f%%, either right %6.2f%%", agreement(guesses[k], guesses[0]),
                               Double(either) / Double(labels.count) * 100)
            }
            text += "\n"
        }
        if members.count > 2 { text += agreementTable(guesses) }
        let combined = mean(members, weights: w)
        let total = w.reduce(0, +)
        text += String(format: "mean of the probabilities, weights %@: %.2f%%\n",
                       w.map { String(format: "%.3g", $0 / total) }.joined(separator: ", "), accuracy(combined, labels) * 100)
        if a.flag("combinations") {
            text += "equal-weight means of every combination of two or more (members numbered as listed):\n"
            for size in 2...members.count {
                for subset in combinations(members.count, size) {
                    let acc = accuracy(mean(subset.map { members[$0] }, weights: Array(repeating: 1, count: size)), labels)
                    text += "  " + subset.map { "\($0 + 1)" }.joined(separator: "+") + String(format: "  %.2f%%\n", acc * 100)
                }
            }
            text += "(a member set picked from these figures is picked on the split the files hold: say so)\n"
        }
        Console.out(text)
        if let out = a.value("output") {
            var csv = EvalCommand.predictionsHeader + "\n"
            for (i, row) in combined.enumerated() {
                csv += EvalCommand.predictionsLine(face: i, label: labels[i], predicted: argmax(row), row)
            }
            do { try writeFileAtomically(Array(csv.utf8), to: out) } catch { throw CLIError("\(out): \(error)") }
            Console.err("wrote the mean's \(labels.count) predictions to \(out)\n")
        }
    }

    /// `--combinations` lists 2^n - n - 1 means; twelve members (4,083) is far past any
    /// ensemble worth building and still prints at once, where thirty would not end.
    static let maxCombinationMembers = 12

    static func combinationCount(_ n: Int) -> Int { (1 << n) - n - 1 }

    /// The share of faces, in percent, on which two members give the same class.
    static func agreement(_ a: [Int], _ b: [Int]) -> Double {
        Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count) * 100
    }

    /// How often every two members give the same class, as a lower triangle in percent (the
    /// members numbered as listed): the pairs that agree least are the ones a mean gains most from.
    static func agreementTable(_ guesses: [[Int]]) -> String {
        var text = "agreement of every two members, % of the faces (members numbered as listed):\n"
        text += "     " + (1..<guesses.count).map { String(format: "%6d", $0) }.joined() + "\n"
        for i in 1..<guesses.count {
            text += String(format: "  %2d ", i + 1)
            for j in 0..<i { text += String(format: "%6.1f", agreement(guesses[i], guesses[j])) }
            text += "\n"
        }
        return text
    }

    /// The index sets of `size` out of `n`, in lexicographic order.
    static func combinations(_ n: Int, _ size: Int) -> [[Int]] {
        guard size > 0 else { return [[]] }
        guard size <= n else { return [] }
        var out: [[Int]] = []
        func extend(_ prefix: [Int], from: Int) {
            if prefix.count == size { out.append(prefix); return }
            for i in from..<n where n - i >= size - prefix.count { extend(prefix + [i], from: i + 1) }
        }
        extend([], from: 0)
        return out
    }
}
