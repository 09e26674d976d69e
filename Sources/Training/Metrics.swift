// Classification metrics: accuracy, the confusion matrix (rows = true class), and per-class
// precision, recall and F1.

public struct Confusion: Sendable, Equatable {
    public var classes: Int
    /// counts[truth][predicted]
    public var counts: [[Int]]

    public init(classes: Int) {
        self.classes = classes
        counts = Array(repeating: Array(repeating: 0, count: classes), count: classes)
    }

    public mutating func add(truth: Int, predicted: Int) { counts[truth][predicted] += 1 }

    public var total: Int { counts.reduce(0) { $0 + $1.reduce(0, +) } }
    public var correct: Int { (0..<classes).reduce(0) { $0 + counts[$1][$1] } }
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }

    public func precision(_ c: Int) -> Double {
        let predicted = (0..<classes).reduce(0) { $0 + counts[$1][c] }
        return predicted == 0 ? 0 : Double(counts[c][c]) / Double(predicted)
    }
    public func recall(_ c: Int) -> Double {
        let actual = counts[c].reduce(0, +)
        return actual == 0 ? 0 : Double(counts[c][c]) / Double(actual)
    }
    public func f1(_ c: Int) -> Double {
        let p = precision(c), r = recall(c)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }
    public func support(_ c: Int) -> Int { counts[c].reduce(0, +) }

    /// Rows normalized to sum to 1 (zeros for a class with no examples).
    public var normalized: [[Double]] {
        counts.map { row in
            let s = row.reduce(0, +)
            return row.map { s == 0 ? 0 : Double($0) / Double(s) }
        }
    }
}

/// The index of the largest of `k` logits starting at `offset` (the first on ties).
public func argmax(_ v: [Float], offset: Int, count k: Int) -> Int {
    var best = 0
    for j in 1..<k where v[offset + j] > v[offset + best] { best = j }
    return best
}
