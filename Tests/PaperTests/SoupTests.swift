// A uniform soup: `fergc compile M.graph --weights A --weights B` compiles the element-by-element
// mean of A's and B's values; files from different models, a plan beside a checkpoint and a
// training plan are refused, each saying why.

import Foundation
import NumPyIO
import Passes
import Runtime
import Training
import XCTest

/// The mean of `sets` added to a soup in order (nil for none).
private func averageValues(_ sets: [(source: String, values: [String: [Float]])]) throws -> [String: [Float]]? {
    var soup = Soup()
    for set in sets { try soup.add(set.values, from: set.source) }
    return soup.mean
}

final class SoupTests: XCTestCase {
    func testTheMeanIsSummedInDoubleAndRoundedOnce() throws {
        // 1, 1 + 2^-23 and 1 + 2^-23: summed in f32 (ties to even twice) the mean would be 1;
        // summed in double it is 1 + 2^-23, the float nearest 1 + (2/3) 2^-23.
        let e = Float.ulpOfOne
        var soup = Soup()
        try soup.add(["w": [1, 2, -4], "b": [0.5]], from: "a")
        try soup.add(["w": [1 + e, 4, 4], "b": [1.5]], from: "b")
        try soup.add(["w": [1 + e, 0, 3], "b": [1]], from: "c")
        let mean = try XCTUnwrap(soup.mean)
        XCTAssertEqual(soup.count, 3)
        XCTAssertEqual(mean["w"], [1 + e, 2, 1])
        XCTAssertEqual(mean["b"], [1])
        XCTAssertNil(Soup().mean)
    }

    func testSetsOfAnotherModelAreRefusedByName() throws {
        XCTAssertThrowsError(try averageValues([("a.npz", ["w": [1], "b": [2]]), ("b.npz", ["w": [1]])])) { e in
            XCTAssertTrue("\(e)".contains("b.npz has no 'b', which a.npz has"), "\(e)")
        }
        XCTAssertThrowsError(try averageValues([("a.npz", ["w": [1]]), ("b.npz", ["w": [1], "extra": [3]])])) { e in
            XCTAssertTrue("\(e)".contains("b.npz has 'extra', which a.npz has not"), "\(e)")
        }
        XCTAssertThrowsError(try averageValues([("a.npz", ["w": [1, 2]]), ("b.npz", ["w": [1, 2, 3]])])) { e in
            XCTAssertTrue("\(e)".contains("'w' has 2 values in a.npz and 3 in b.npz"), "\(e)")
        }
        XCTAssertNil(try averageValues([]))
    }

    /// The CLI on checkpoints' stand-ins (.npz) and on plans: the plan compiled from two files
    /// holds their mean; the refusals name the files.
    func testCompileAveragesTheFilesItIsGiven() throws {
        let dir = temporaryDirectory("soup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Two sets of values of Models/tiny.graph: the seeded ones of two seeds, as plans
        // (batchnorm folded) and as the training plans' values (the model's own tensors).
        for seed in ["1", "2"] {
            let p = try fergc(["compile", "Models/tiny.graph", "--seed", seed, "-o", "\(dir)/s\(seed).plan"])
            XCTAssertEqual(p.status, 0, p.stderr)
            let t = try fergc(["compile", "Models/tiny.graph", "--train", "--seed", seed, "-o", "\(dir)/t\(seed).plan"])
            XCTAssertEqual(t.status, 0, t.stderr)
            let values = try readPlan(path: "\(dir)/t\(seed).plan").parameters.filter { !$0.key.hasPrefix("sgd.") && !$0.key.hasPrefix("adam.") && $0.key != "optimizer.iterations" }
            try NumPyIO.writeNPZ(values.sorted { $0.key < $1.key }.map { ($0.key, NDArray(floats: $0.value, shape: [$0.value.count])) },
                                 compressed: false, to: "\(dir)/w\(seed).npz")
        }
        let p1 = try readPlan(path: "\(dir)/s1.plan").parameters, p2 = try readPlan(path: "\(dir)/s2.plan").parameters
        XCTAssertNotEqual(p1, p2)

        // Plans: the mean of the stored values, tensor by tensor.
        let r = try fergc(["compile", "Models/tiny.graph", "--weights", "\(dir)/s1.plan", "--weights", "\(dir)/s2.plan", "-o", "\(dir)/soup.plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("the element-by-element mean of 2 files' values"), r.stderr)
        let soup = try readPlan(path: "\(dir)/soup.plan").parameters
        XCTAssertEqual(Set(soup.keys), Set(p1.keys))
        for (name, v) in soup {
            XCTAssertEqual(v, zip(p1[name]!, p2[name]!).map { Float((Double($0) + Double($1)) / 2) }, name)
        }

        // .npz files: the model's values averaged, then folded as one file's would be; the
        // same as compiling an .npz that holds the mean.
        let n = try fergc(["compile", "Models/tiny.graph", "--weights", "\(dir)/w1.npz", "--weights", "\(dir)/w2.npz", "-o", "\(dir)/soupn.plan"])
        XCTAssertEqual(n.status, 0, n.stderr)
        let w1 = try readArchive("\(dir)/w1.npz"), w2 = try readArchive("\(dir)/w2.npz")
        try NumPyIO.writeNPZ(w1.keys.sorted().map { k in
            (k, NDArray(floats: zip(w1[k]!.floats, w2[k]!.floats).map { Float((Double($0) + Double($1)) / 2) }, shape: w1[k]!.shape))
        }, compressed: false, to: "\(dir)/mean.npz")
        let m = try fergc(["compile", "Models/tiny.graph", "--weights", "\(dir)/mean.npz", "-o", "\(dir)/mean.plan"])
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(try readPlan(path: "\(dir)/soupn.plan").parameters, try readPlan(path: "\(dir)/mean.plan").parameters)

        // Refusals.
        let mixed = try fergc(["compile", "Models/tiny.graph", "--weights", "\(dir)/s1.plan", "--weights", "\(dir)/w2.npz", "-o", "\(dir)/x.plan"])
        XCTAssertEqual(mixed.status, 2)
        XCTAssertTrue(mixed.stderr.contains("\(dir)/s1.plan is a plan and \(dir)/w2.npz is not"), mixed.stderr)
        let train = try fergc(["compile", "Models/tiny.graph", "--train", "--weights", "\(dir)/w1.npz", "--weights", "\(dir)/w2.npz", "-o", "\(dir)/x.plan"])
        XCTAssertEqual(train.status, 2)
        XCTAssertTrue(train.stderr.contains("fergc train --init"), train.stderr)
        try NumPyIO.writeNPZ([("c1.weight", NDArray(floats: [Float](repeating: 0, count: 36), shape: [4, 1, 3, 3]))], compressed: false, to: "\(dir)/part.npz")
        let part = try fergc(["compile", "Models/tiny.graph", "--weights", "\(dir)/w1.npz", "--weights", "\(dir)/part.npz", "-o", "\(dir)/x.plan"])
        XCTAssertEqual(part.status, 1)
        XCTAssertTrue(part.stderr.contains("\(dir)/part.npz has no '"), part.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x.plan"))
    }
}
