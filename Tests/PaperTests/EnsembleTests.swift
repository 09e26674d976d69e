// `fergc ensemble`: one plan whose probabilities are the weighted mean of its members', in
// one arena smaller than the members' together; members that disagree are named.

import Foundation
import GraphIR
import Passes
import Runtime
import TestSupport
import Training
import XCTest

final class EnsembleTests: XCTestCase {
    func plan(_ m: Graph, seed: UInt64, batch: Int = 8) throws -> Plan {
        var options = CompileOptions()
        options.batch = batch
        options.seed = seed
        options.probe = false
        return try compile(m, options).plan
    }

    func faces(_ n: Int) throws -> [UInt8] {
        let set = try loadFER2013(path: samplePath, options: LoadOptions(splits: [.publicTest]))[.publicTest]
        return Array(set.pixels[0..<(n * FaceSet.pixelsPerImage)])
    }

    /// Runs the ensemble and its members (through the file format, as a user gets them) on n
    /// sample faces and checks every probability against the members' weighted mean (1e-6).
    /// Returns the members' outputs.
    @discardableResult
    func assertWeightedMean(_ e: Plan, of members: [Plan], weights: [Double], faces n: Int,
                            file: StaticString = #filePath, line: UInt = #line) throws -> [[[Float]]] {
        let pixels = try faces(n)
        let got = try Session(LoadedPlan(bytes: encodePlan(e))).predictRaw(pixels: pixels)
        let each = try members.map { try Session(LoadedPlan(bytes: encodePlan($0))).predictRaw(pixels: pixels) }
        XCTAssertEqual(got.count, n, file: file, line: line)
        let total = weights.reduce(0, +)
        for i in 0..<min(got.count, n) {
            for c in 0..<got[i].count {
                let mean = members.indices.reduce(0.0) { $0 + weights[$1] * Double(each[$1][i][c]) } / total
                XCTAssertEqual(Double(got[i][c]), mean, accuracy: 1e-6, "face \(i) class \(c)", file: file, line: line)
            }
        }
        return each
    }

    func testProbabilitiesAreTheWeightedMeanOfTheMembers() throws {
        let tiny = try model("Models/tiny.graph")
        var scaled = tiny
        scaled.training?.inputScale = 1  // a member fed raw pixels: the ensemble scales its input
        let members = [try plan(tiny, seed: 1), try plan(tiny, seed: 2), try plan(scaled, seed: 3)]
        let weights = [1.0, 2.0, 1.0]
        let e = try ensemblePlans(members.enumerated().map { EnsembleMember(label: "m\($0.offset)", plan: $0.element) }, weights: weights)
        XCTAssertTrue(try LoadedPlan(bytes: encodePlan(e)).outputIsProbabilities)
        let each = try assertWeightedMean(e, of: members, weights: weights, faces: 5)
        let differ = zip(each[0], each[1]).contains { zip($0, $1).contains { abs($0 - $1) > 1e-3 } }
        XCTAssertTrue(differ, "the members should differ for the mean to mean something")
        // One arena: two members of one scale need less than their two arenas.
        let pair = try ensemblePlans([EnsembleMember(label: "a", plan: members[0]), EnsembleMember(label: "b", plan: members[1])])
        let arena = try XCTUnwrap(pair.memory?.arenaBytes)
        let sum = members[0...1].compactMap { $0.memory?.arenaBytes }.reduce(0, +)
        XCTAssertLessThan(arena, sum)
        XCTAssertEqual(e.metadata.ensemble?.members.map(\.weight), [0.25, 0.5, 0.25])
    }

    /// Members whose output is already a probability vector (a TTA plan's mean softmax, an
    /// ensemble's mean) enter the mean as they are: a second softmax would flatten them toward
    /// uniform and hand the ensemble to the other members.
    func testTTAAndEnsembleMembersAreNotSoftmaxedTwice() throws {
        let tiny = try model("Models/tiny.graph")
        let plain = try plan(tiny, seed: 4)
        let flip = try applyTTA(try plan(tiny, seed: 5), kind: .flip)
        let inner = try ensemblePlans([EnsembleMember(label: "a", plan: try plan(tiny, seed: 6)),
                                       EnsembleMember(label: "b", plan: try plan(tiny, seed: 7))])
        let members = [plain, flip, inner]
        XCTAssertEqual(members.map(\.outputIsProbabilities), [false, true, true])
        let weights = [1.0, 1.0, 2.0]
        let e = try ensemblePlans(members.enumerated().map { EnsembleMember(label: "m\($0.offset)", plan: $0.element) }, weights: weights)
        try assertWeightedMean(e, of: members, weights: weights, faces: 4)
    }

    /// Weights keep their ratios at the ends of the doubles: two of 1e308 (whose sum is
    /// infinite: it gave every probability 0) and subnormals are halves, like 1 and 1.
    func testHugeAndSubnormalWeightsKeepTheirRatios() throws {
        let tiny = try model("Models/tiny.graph")
        let members = [try plan(tiny, seed: 1), try plan(tiny, seed: 2)]
        // Subnormals as multiples of the smallest double (what the literals 1e-320, 3e-320 and
        // 5e-324 round to, without the compiler's warning that they do).
        let least = Double.leastNonzeroMagnitude
        for weights in [[1e308, 1e308], [2024 * least, 6072 * least], [0, least]] {
            let e = try ensemblePlans(members.enumerated().map { EnsembleMember(label: "m\($0.offset)", plan: $0.element) }, weights: weights)
            let expected = weights[0] == 0 ? [0.0, 1.0] : weights[0] == 1e308 ? [0.5, 0.5] : [0.25, 0.75]
            XCTAssertEqual(e.metadata.ensemble?.members.map(\.weight), expected, "\(weights)")
            try assertWeightedMean(e, of: members, weights: expected, faces: 2)
        }
        XCTAssertEqual(normalizedWeights([2, 6]), [0.25, 0.75])
        for bad in [[0.0, 0.0], [1, -1], [1, .nan], [1, .infinity], []] { XCTAssertNil(normalizedWeights(bad), "\(bad)") }
    }

    func testMembersThatDisagreeAreNamed() throws {
        let tiny = try model("Models/tiny.graph")
        let five = try model(source: try String(contentsOfFile: repoRoot.appendingPathComponent("Models/tiny.graph").path, encoding: .utf8)
            .replacingOccurrences(of: "units=7", with: "units=5"))
        let a = EnsembleMember(label: "a.plan", plan: try plan(tiny, seed: 1))
        let b = EnsembleMember(label: "b.plan", plan: try plan(five, seed: 1))
        XCTAssertThrowsError(try ensemblePlans([a, b])) { XCTAssertTrue("\($0)".contains("class counts differ: a.plan has 7, b.plan has 5"), "\($0)") }
        XCTAssertThrowsError(try ensemblePlans([a])) { XCTAssertTrue("\($0)".contains("at least two"), "\($0)") }
        XCTAssertThrowsError(try ensemblePlans([a, a], weights: [1])) { XCTAssertTrue("\($0)".contains("1 weights for 2 plans"), "\($0)") }
    }

    /// `fergc compile Models/tiny.graph` with each seed, to DIR/m<seed>.plan, as a user makes members.
    func compileTinyPlans(seeds: [Int], in dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for seed in seeds {
            let r = try fergc(["compile", "Models/tiny.graph", "--seed", "\(seed)", "--batch", "8", "-o", "\(dir)/m\(seed).plan"])
            XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        }
    }

    func testTheCommandWritesAPlanEvalAndPredictRead() throws {
        let dir = temporaryDirectory("ensemble")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try compileTinyPlans(seeds: [1, 2], in: dir)
        let r = try fergc(["ensemble", "\(dir)/m1.plan", "\(dir)/m2.plan", "--weights", "1,3", "-o", "\(dir)/e.plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 members"), r.stdout)
        let inspect = try fergc(["inspect", "\(dir)/e.plan"])
        XCTAssertTrue(inspect.stdout.contains("ensemble") && inspect.stdout.contains("x 0.75"), inspect.stdout)
        let eval = try fergc(["eval", "\(dir)/e.plan", "--data", samplePath, "--split", "PublicTest", "--out", dir])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("accuracy"), eval.stdout)
        let bad = try fergc(["ensemble", "\(dir)/m1.plan", "-o", "\(dir)/x.plan"])
        XCTAssertNotEqual(bad.status, 0)
        // An ensemble plan given as a member joins as its members, and the command says so.
        let joined = try fergc(["ensemble", "\(dir)/e.plan", "\(dir)/m1.plan", "-o", "\(dir)/f.plan"])
        XCTAssertEqual(joined.status, 0, joined.stderr)
        XCTAssertTrue(joined.stdout.contains("3 members (from 2 plans") && joined.stdout.contains("weights 0.125, 0.375, 0.5"), joined.stdout)
    }

    /// `fergc ensemble --predictions` scores from the members' `eval --predictions` files what the
    /// ensemble plan scores when evaluated, and writes the mean's predictions as `eval` would;
    /// a damaged file or files of different splits are refused with the file and line.
    func testPredictionsModeScoresWhatTheEnsemblePlanScores() throws {
        let dir = temporaryDirectory("ensemble-predictions")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for seed in [1, 2] {
            XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "--seed", "\(seed)", "--batch", "8", "-o", "\(dir)/m\(seed).plan"]).status, 0)
        }
        XCTAssertEqual(try fergc(["ensemble", "\(dir)/m1.plan", "\(dir)/m2.plan", "--weights", "1,3", "-o", "\(dir)/e.plan"]).status, 0)
        for name in ["m1", "m2", "e"] {
            let r = try fergc(["eval", "\(dir)/\(name).plan", "--data", samplePath, "--predictions", "\(dir)/\(name).csv", "--out", dir])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let planAccuracy = try XCTUnwrap(try fergc(["eval", "\(dir)/e.plan", "--data", samplePath, "--out", dir]).stdout
            .split(separator: "\n").first.flatMap { $0.components(separatedBy: "accuracy ").last })
        let r = try fergc(["ensemble", "--predictions", "\(dir)/m1.csv", "\(dir)/m2.csv", "--weights", "1,3", "--combinations", "-o", "\(dir)/mean.csv"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("weights 0.25, 0.75: \(planAccuracy)"), "\(planAccuracy) not in \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("  1+2  "), r.stdout)
        XCTAssertTrue(r.stdout.contains("agrees"), r.stdout)
        // The mean's file is the plan's predictions, up to the six decimals the members' files keep.
        func rows(_ path: String) throws -> [[Double]] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
                .map { $0.split(separator: ",").map { Double($0)! } }
        }
        let mean = try rows("\(dir)/mean.csv"), plan = try rows("\(dir)/e.csv")
        XCTAssertEqual(mean.count, plan.count)
        XCTAssertGreaterThan(mean.count, 100)
        for (a, b) in zip(mean, plan) {
            XCTAssertEqual(a[0...1], b[0...1])
            for c in 3..<10 { XCTAssertEqual(a[c], b[c], accuracy: 2e-6) }
        }
        // Damaged and mismatched files: the file and the line.
        let original = try String(contentsOfFile: "\(dir)/m2.csv", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var lines = original
        lines[5] = lines[5].replacingOccurrences(of: ",0.", with: ",nan0.", options: [], range: nil)[...]
        try lines.joined(separator: "\n").write(toFile: "\(dir)/bad.csv", atomically: true, encoding: .utf8)
        let bad = try fergc(["ensemble", "--predictions", "\(dir)/m1.csv", "\(dir)/bad.csv"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("\(dir)/bad.csv:6: the probability of "), bad.stderr)
        let short = original.prefix(50).joined(separator: "\n")
        try short.write(toFile: "\(dir)/short.csv", atomically: true, encoding: .utf8)
        let mismatch = try fergc(["ensemble", "--predictions", "\(dir)/m1.csv", "\(dir)/short.csv"])
        XCTAssertEqual(mismatch.status, 1)
        XCTAssertTrue(mismatch.stderr.contains("not predictions of the same split"), mismatch.stderr)
        let header = try fergc(["ensemble", "--predictions", "\(dir)/m1.csv", "\(dir)/m1.plan"])
        XCTAssertEqual(header.status, 1)
        XCTAssertTrue(header.stderr.contains("m1.plan"), header.stderr)
        let weights = try fergc(["ensemble", "--predictions", "\(dir)/m1.csv", "\(dir)/m2.csv", "--weights", "1"])
        XCTAssertNotEqual(weights.status, 0)
        XCTAssertTrue(weights.stderr.contains("--weights has 1 values for 2 members"), weights.stderr)
        // Thirteen members would be 8,178 means: refused before a file is read.
        let many = try fergc(["ensemble", "--predictions", "--combinations"] + Array(repeating: "\(dir)/m1.csv", count: 13))
        XCTAssertEqual(many.status, 2)
        XCTAssertTrue(many.stderr.contains("at most 12 members (4083 means), got 13 (8178 means)"), many.stderr)
    }

    /// With three or more members the command prints how often every two agree; each figure is
    /// the share of faces on which the two files' most probable classes are the same, counted
    /// here from the files, and a member agrees with a copy of itself on every face.
    func testPredictionsModePrintsTheAgreementOfEveryTwoMembers() throws {
        let dir = temporaryDirectory("ensemble-agreement")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for seed in [1, 2] {
            XCTAssertEqual(try fergc(["compile", "Models/tiny.graph", "--seed", "\(seed)", "--batch", "8", "-o", "\(dir)/m\(seed).plan"]).status, 0)
            let r = try fergc(["eval", "\(dir)/m\(seed).plan", "--data", samplePath, "--predictions", "\(dir)/m\(seed).csv", "--out", dir])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try FileManager.default.copyItem(atPath: "\(dir)/m1.csv", toPath: "\(dir)/copy.csv")
        let r = try fergc(["ensemble", "--predictions", "\(dir)/m1.csv", "\(dir)/m2.csv", "\(dir)/copy.csv"])
        XCTAssertEqual(r.status, 0, r.stderr)
        func guesses(_ path: String) throws -> [Int] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst().map {
                let p = $0.split(separator: ",").dropFirst(3).map { Double($0)! }
                return p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) }!
            }
        }
        let g1 = try guesses("\(dir)/m1.csv"), g2 = try guesses("\(dir)/m2.csv")
        let same = Double(zip(g1, g2).filter { $0 == $1 }.count) / Double(g1.count) * 100
        XCTAssertLessThan(same, 100, "two seeds that agree on every face test nothing here")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let at = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("agreement of every two members") }, r.stdout)
        XCTAssertEqual(lines[at + 2], "   2 " + String(format: "%6.1f", same), r.stdout)
        XCTAssertEqual(lines[at + 3], "   3 " + String(format: "%6.1f%6.1f", 100.0, same), r.stdout)
    }

    /// The C API (Examples/c/classify.c over libfergc_runtime.so) classifies with an ensemble
    /// plan as the Swift runtime does.
    /// `fergc ensemble --member K`: a member taken out of an ensemble plan gives, through the
    /// file format, what it gave inside (its own plan's probabilities; for the member fed raw
    /// pixels, through the ensemble's scale step, to float rounding), keeps its name and TTA,
    /// and the members taken out merge back into a plan whose probabilities are the
    /// ensemble's, bit for bit. Numbers out of range, a plan that is no ensemble and a member
    /// that is itself an ensemble are refused with what is wrong.
    func testAMemberTakenOutOfAnEnsembleComputesWhatItDidInside() throws {
        let tiny = try model("Models/tiny.graph")
        var raw = tiny
        raw.training?.inputScale = 1
        let members = [try plan(tiny, seed: 1), try plan(raw, seed: 3), try applyTTA(try plan(tiny, seed: 5), kind: .flip)]
        let weights = [1.0, 2.0, 1.0]
        let e = try ensemblePlans(members.enumerated().map { EnsembleMember(label: "m\($0.offset)", plan: $0.element) }, weights: weights)
        let pixels = try faces(6)
        let run = { (p: Plan) throws -> [[Float]] in try Session(LoadedPlan(bytes: encodePlan(p))).predictRaw(pixels: pixels) }
        var out: [Plan] = []
        for k in 1...3 {
            let m = try ensembleMember(e, number: k)
            out.append(m)
            XCTAssertEqual(m.metadata.modelName, members[k - 1].metadata.modelName)
            XCTAssertEqual(m.metadata.tta, members[k - 1].metadata.tta)
            XCTAssertEqual(m.metadata.passes, members[k - 1].metadata.passes + ["ensemble-member"])
            XCTAssertEqual(m.parameters.values.map(\.count).reduce(0, +), members[k - 1].parameters.values.map(\.count).reduce(0, +))
            XCTAssertEqual(try LoadedPlan(bytes: encodePlan(m)).outputIsProbabilities, members[k - 1].outputIsProbabilities)
            let got = try run(m), want = try run(members[k - 1])
            XCTAssertEqual(got.count, pixels.count / FaceSet.pixelsPerImage)
            for (g, w) in zip(got, want) {
                for (a, b) in zip(g, w) {
                    if k == 2 { XCTAssertEqual(a, b, accuracy: 1e-5, "member 2") } else { XCTAssertEqual(a, b, "member \(k)") }
                }
            }
        }
        XCTAssertEqual(out[2].metadata.tta?.hasPrefix("flip"), true, "\(out[2].metadata.tta ?? "nil")")
        // Member 2 keeps the scale step the ensemble gave it; its input takes the ensemble's scale.
        XCTAssertEqual(out[1].metadata.inputScale, e.metadata.inputScale)
        XCTAssertEqual(out[1].steps.first?.name, "input_scale")
        let again = try ensemblePlans(out.enumerated().map { EnsembleMember(label: "o\($0.offset)", plan: $0.element) }, weights: weights)
        XCTAssertEqual(try run(again), try run(e))
        XCTAssertEqual(again.metadata.ensemble?.members.map(\.weight), e.metadata.ensemble?.members.map(\.weight))

        for k in [0, 4] {
            XCTAssertThrowsError(try ensembleMember(e, number: k)) { XCTAssertTrue("\($0)".contains("member \(k) does not exist: the ensemble has members 1-3"), "\($0)") }
        }
        XCTAssertThrowsError(try ensembleMember(members[0], number: 1)) { XCTAssertTrue("\($0)".contains("is not an ensemble plan"), "\($0)") }
        // An ensemble nested whole (as fergc did before members joined one by one) keeps its
        // members out of reach; merged again, it joins whole, and computes what it did.
        let nested = try ensemblePlans([EnsembleMember(label: "a", plan: members[0]), EnsembleMember(label: "e", plan: e)], flatten: false)
        XCTAssertEqual(nested.metadata.ensemble?.members.count, 2)
        XCTAssertNoThrow(try ensembleMember(nested, number: 1))
        XCTAssertThrowsError(try ensembleMember(nested, number: 2)) { XCTAssertTrue("\($0)".contains("is itself an ensemble"), "\($0)") }
        let outer = try ensemblePlans([EnsembleMember(label: "n", plan: nested), EnsembleMember(label: "b", plan: members[1])])
        XCTAssertEqual(outer.metadata.ensemble?.members.count, 2, "the old nested plan whole, then b")
        try assertWeightedMean(outer, of: [nested, members[1]], weights: [1, 1], faces: 3)
        var empty = e
        empty.metadata.ensemble = EnsembleInfo(members: [])
        XCTAssertThrowsError(try ensembleMember(empty, number: 1)) { XCTAssertTrue("\($0)".contains("lists no members"), "\($0)") }
    }

    /// A member that is itself an ensemble (one model's view sets, an earlier ensemble) joins as
    /// its members, each weighted by its weight there times the member's: the probabilities are
    /// the same weighted mean, every view set can be taken out again, and one model's tensors
    /// are stored once however many plans bring them.
    func testAnEnsembleMemberJoinsAsItsMembers() throws {
        let tiny = try model("Models/tiny.graph")
        let a = try plan(tiny, seed: 1), b = try plan(tiny, seed: 2)
        let aFlip = try applyTTA(a, kind: .flip)
        let views = try ensemblePlans([EnsembleMember(label: "a", plan: a), EnsembleMember(label: "aflip", plan: aFlip)], weights: [1, 3])
        let one = a.parameters.values.map(\.count).reduce(0, +)
        XCTAssertEqual(views.parameters.values.map(\.count).reduce(0, +), one, "one model's two view sets: its weights once")
        let e = try ensemblePlans([EnsembleMember(label: "views", plan: views), EnsembleMember(label: "b", plan: b)], weights: [2, 2])
        let info = try XCTUnwrap(e.metadata.ensemble)
        XCTAssertEqual(info.members.map(\.weight), [0.125, 0.375, 0.5])
        XCTAssertEqual(info.members.map(\.name), [a, aFlip, b].map(\.metadata.modelName))
        XCTAssertEqual(info.members[1].tta, aFlip.metadata.tta)
        try assertWeightedMean(e, of: [a, aFlip, b], weights: [0.125, 0.375, 0.5], faces: 4)
        try assertWeightedMean(e, of: [views, b], weights: [1, 1], faces: 4)
        let flat = try ensemblePlans([a, aFlip, b].map { EnsembleMember(label: $0.metadata.modelName, plan: $0) })
        XCTAssertEqual(e.parameters.keys.sorted(), flat.parameters.keys.sorted(), "what the three plans merged directly store")
        XCTAssertEqual(e.parameters.values.map(\.count).reduce(0, +), flat.parameters.values.map(\.count).reduce(0, +))
        XCTAssertLessThan(e.parameters.values.map(\.count).reduce(0, +), one + b.parameters.values.map(\.count).reduce(0, +) + one)
        // Each view set comes out computing what it computed alone.
        let pixels = try faces(3)
        let run = { (p: Plan) throws -> [[Float]] in try Session(LoadedPlan(bytes: encodePlan(p))).predictRaw(pixels: pixels) }
        XCTAssertEqual(try run(ensembleMember(e, number: 2)), try run(aFlip))
        XCTAssertEqual(try run(ensembleMember(e, number: 3)), try run(b))
        // The same model's view sets from two plans: its weights once in the merged plan.
        let again = try ensemblePlans([EnsembleMember(label: "views", plan: views), EnsembleMember(label: "a", plan: a)])
        XCTAssertEqual(again.metadata.ensemble?.members.map(\.weight), [0.125, 0.375, 0.5])
        XCTAssertEqual(again.parameters.values.map(\.count).reduce(0, +), one)
    }

    func testTheCommandTakesAMemberOut() throws {
        let dir = temporaryDirectory("ensemble-member")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try compileTinyPlans(seeds: [1, 2], in: dir)
        XCTAssertEqual(try fergc(["ensemble", "\(dir)/m1.plan", "\(dir)/m2.plan", "--weights", "1,3", "-o", "\(dir)/e.plan"]).status, 0)
        let r = try fergc(["ensemble", "--member", "2", "\(dir)/e.plan", "-o", "\(dir)/out2.plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("member 2 of 2") && r.stdout.contains("weight 0.75 there"), r.stdout)
        let inspect = try fergc(["inspect", "\(dir)/out2.plan"])
        XCTAssertTrue(inspect.stdout.contains("model 'tiny'") && inspect.stdout.contains("ensemble-member"), inspect.stdout)
        let a = try fergc(["eval", "\(dir)/m2.plan", "--data", samplePath, "--split", "PublicTest"])
        let b = try fergc(["eval", "\(dir)/out2.plan", "--data", samplePath, "--split", "PublicTest"])
        XCTAssertEqual(b.status, 0, b.stderr)
        let accuracy = { (s: String) in s.split(separator: "\n").first { $0.contains("accuracy") }.map(String.init) }
        XCTAssertNotNil(accuracy(a.stdout), a.stdout)
        XCTAssertEqual(accuracy(a.stdout), accuracy(b.stdout))
        let missing = try fergc(["ensemble", "--member", "3", "\(dir)/e.plan", "-o", "\(dir)/x.plan"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("member 3 does not exist: the ensemble has members 1-2"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x.plan"))
        for bad in [["--member", "0", "\(dir)/e.plan", "-o", "\(dir)/x.plan"], ["--member", "1", "\(dir)/e.plan", "\(dir)/m1.plan", "-o", "\(dir)/x.plan"],
                    ["--member", "1", "\(dir)/e.plan", "--weights", "1", "-o", "\(dir)/x.plan"], ["--member", "1", "\(dir)/e.plan"]] {
            let u = try fergc(["ensemble"] + bad)
            XCTAssertEqual(u.status, 2, "\(bad): \(u.stderr)")
        }
        let notEnsemble = try fergc(["ensemble", "--member", "1", "\(dir)/m1.plan", "-o", "\(dir)/x.plan"])
        XCTAssertNotEqual(notEnsemble.status, 0)
        XCTAssertTrue(notEnsemble.stderr.contains("m1.plan") && notEnsemble.stderr.contains("not an ensemble plan"), notEnsemble.stderr)
    }

    func testTheCAPIRunsAnEnsemble() throws {
        // A sanitized libfergc_runtime.so needs the sanitizer runtime linked into the C program:
        // Tools/sanitize.sh names the toolchain's clang and its flags.
        let environment = ProcessInfo.processInfo.environment
        let sanitizerFlags = environment["FERGC_SANITIZER_CFLAGS"].map { $0.split(separator: " ").map(String.init) } ?? []
        if let sanitizer = environment["FERGC_SANITIZER"], environment["FERGC_SANITIZER_CC"] == nil {
            throw XCTSkip("the library is built with \(sanitizer); set FERGC_SANITIZER_CC and FERGC_SANITIZER_CFLAGS to link the C example")
        }
        let lib = productsDirectory.appendingPathComponent("libfergc_runtime.so")
        guard FileManager.default.fileExists(atPath: lib.path) else { throw XCTSkip("\(lib.path) is not built (swift build)") }
        guard let cc = environment["FERGC_SANITIZER_CC"] ?? ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no C compiler in /usr/bin")
        }
        let dir = temporaryDirectory("ensemble-c")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tiny = try model("Models/tiny.graph")
        let e = try ensemblePlans([EnsembleMember(label: "a", plan: try plan(tiny, seed: 1)), EnsembleMember(label: "b", plan: try plan(tiny, seed: 2))])
        try writePlan(e, to: dir + "/e.plan")
        let exe = dir + "/classify"
        let build = try runProgram(cc, ["-std=c99", "-o", exe, repoRoot.path + "/Examples/c/classify.c", "-I", repoRoot.path + "/Sources/CFergc/include",
                                        "-L", productsDirectory.path, "-lfergc_runtime", "-lm"] + sanitizerFlags)
        XCTAssertEqual(build.status, 0, build.stderr)
        let env = ["LD_LIBRARY_PATH": [productsDirectory.path, "/opt/swift/usr/lib/swift/linux", ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? ""].joined(separator: ":")]
        let face = try faces(1)
        try Data(Array("P5\n48 48\n255\n".utf8) + face).write(to: URL(fileURLWithPath: dir + "/face.pgm"))
        let r = try runProgram(exe, [dir + "/e.plan", dir + "/face.pgm"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let probs = r.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }.compactMap { Float($0.split(separator: " ").last!) }
        XCTAssertEqual(probs.count, 7, r.stdout)
        // The mean of probabilities, not a softmax of it (which would flatten it).
        let expected = try Session(LoadedPlan(plan: e)).predictRaw(pixels: face)[0]
        for (got, want) in zip(probs, expected) { XCTAssertEqual(got, want, accuracy: 1e-5) }
        XCTAssertTrue(r.stdout.contains("7 classes"), r.stdout)
    }
}
