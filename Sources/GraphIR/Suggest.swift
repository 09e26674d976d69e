// "Did you mean" suggestions for misspelt names (ops, attributes, values, options, passes).

/// The candidate closest to `name` by edit distance (a transposition counts as one edit), if
/// it is close enough to be a plausible typo: 1 edit for names of up to 2 characters, 2 up to
/// 5, else 3.
public func closestMatch(_ name: String, among candidates: [String]) -> String? {
    let a = Array(name.lowercased().unicodeScalars)
    guard !a.isEmpty, a.count <= 64 else { return nil }
    let limit = a.count <= 2 ? 1 : (a.count <= 5 ? 2 : 3)
    var best: (String, Int)?
    for c in candidates where c != name {
        let b = Array(c.lowercased().unicodeScalars)
        guard abs(b.count - a.count) <= limit, b.count <= 64 else { continue }
        let d = editDistance(a, b)
        guard d <= limit, d < max(a.count, b.count) else { continue }
        if let (_, bestDistance) = best, bestDistance <= d { continue }
        best = (c, d)
    }
    return best?.0
}

/// " (did you mean 'x'?)" or "".
public func didYouMean(_ name: String, _ candidates: [String]) -> String {
    closestMatch(name, among: candidates).map { " (did you mean '\($0)'?)" } ?? ""
}

/// Optimal-string-alignment distance.
func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev2 = [Int](repeating: 0, count: b.count + 1)
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            var d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d = min(d, prev2[j - 2] + 1) }
            cur[j] = d
        }
        (prev2, prev, cur) = (prev, cur, prev2)
    }
    return prev[b.count]
}
