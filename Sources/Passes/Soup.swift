// soup: the element-by-element mean of several sets of one model's values (a uniform "model
// soup", Wortsman et al. 2022: fine-tunes started from the same weights, averaged, often beat
// each of them). `fergc compile M.graph --weights A --weights B` compiles the mean of A's and
// B's values. Only sets that came from one start make sense averaged: two models trained from
// different initial weights have no reason to agree unit for unit, and their mean is usually
// worse than either; nothing here can tell the two cases apart, so that is the caller's claim.

/// The element-by-element mean of sets of values added one at a time (so averaging many files
/// holds the running sums and one file's values, not every file): each set named by its source
/// for errors, summed in double precision in the order added and rounded once. Every set must
/// hold the same tensors with the same number of values as the first; the first difference is
/// named with its files.
public struct Soup {
    private var first: String?
    private var sums: [String: [Double]] = [:]
    public private(set) var count = 0

    public init() {}

    public mutating func add(_ values: [String: [Float]], from source: String) throws {
        guard let firstSource = first else {
            first = source
            sums = values.mapValues { $0.map(Double.init) }
            count = 1
            return
        }
        if let name = sums.keys.sorted().first(where: { values[$0] == nil }) {
            throw PassError(pass: "soup", message: "\(source) has no '\(name)', which \(firstSource) has: averaged values must come from one model")
        }
        if let name = values.keys.sorted().first(where: { sums[$0] == nil }) {
            throw PassError(pass: "soup", message: "\(source) has '\(name)', which \(firstSource) has not: averaged values must come from one model")
        }
        for (name, sum) in sums.sorted(by: { $0.key < $1.key }) where values[name]!.count != sum.count {
            throw PassError(pass: "soup", message: "'\(name)' has \(sum.count) values in \(firstSource) and \(values[name]!.count) in \(source)")
        }
        for (name, v) in values {
            sums[name]!.withUnsafeMutableBufferPointer { s in
                for i in s.indices { s[i] += Double(v[i]) }
            }
        }
        count += 1
    }

    /// The mean of the sets added (nil before the first).
    public var mean: [String: [Float]]? {
        guard count > 0 else { return nil }
        let scale = 1.0 / Double(count)
        return sums.mapValues { $0.map { Float($0 * scale) } }
    }
}
