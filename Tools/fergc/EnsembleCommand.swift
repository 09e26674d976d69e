// fergc ensemble: several inference plans merged into one plan whose output is the weighted
// mean of the members' probabilities (Sources/Passes/Ensemble.swift).

import Foundation
import Passes
import Runtime

enum EnsembleCommand {
    static let spec = CommandSpec(
        name: "ensemble",
        usage: "ensemble A.plan B.plan [C.plan ...] [--weights W1,W2,...] -o E.plan | ensemble --member K E.plan -o M.plan | ensemble --predictions A.csv B.csv [...] [--weights ...] [--combinations] [-o E.csv]",
        summary: "Merge inference plans into one: one input, one schedule, one arena, the mean of their probabilities (or score such a mean from eval --predictions files).",
        options: [
            OptionSpec(name: "output", kind: .value("E.plan"), help: "Where to write the ensemble plan (required; also -o). With --predictions: the mean's predictions file (optional)."),
            OptionSpec(name: "weights", kind: .value("W1,W2,..."), help: "One weight per plan (non-negative; normalized to sum 1). Default: equal."),
            OptionSpec(name: "name", kind: .value("NAME"), help: "The ensemble's model name (default: ensemble)."),
            OptionSpec(name: "member", kind: .value("K"), help: "Take member K (1-based, as inspect lists them) out of the ensemble plan E.plan as an inference plan of its own."),
            OptionSpec(name: "predictions", kind: .flag, help: "The arguments are the members' fergc eval --predictions files: score the ensemble from them, build no plan."),
            OptionSpec(name: "combinations", kind: .flag, help: "With --predictions: also the equal-weight mean of every combination of two or more members (at most 12 members)."),
        ],
        details: """
        The members must be inference plans (fergc compile without --train) that agree on the
        input shape and the classes; the command names the first that differs. Each member's
        class scores go through a softmax (unless they already are probabilities: a --tta
        plan's mean or an ensemble's), are weighted and added, as Keras' average() of the
        members' softmax outputs (the paper's ensemble). A member whose input scale differs from
        the first's gets a scale step. The members run one after the other over one arena, so
        its size is about the largest member's, not their sum. A member's weight tensor equal in
        name, shape and values to an earlier member's is stored once: one model's view sets
        (compile --tta center_flip, and --input-side 48 --tta flip from the same weights)
        merged here cost the weights of one model. A plan that is itself an ensemble (a
        --tta center_flip+whole_flip plan, an earlier ensemble) joins as its members, each
        weighted by its weight there times the plan's: two models' view-set plans merged give
        four members, each of which --member takes out, and one model's view sets from
        several plans share its weights. inspect, explain, eval, predict, the Swift runtime
        and the C API take the result like any plan.

        With --member K the one argument is an ensemble plan, and the output is its K-th member
        as a plan of its own, for a member whose original file is gone: the member's steps and
        weights as they run inside the ensemble (its compute type, its weights' stored values,
        a scale step if its input scale differed from the first member's), so that eval and
        predict give what the member gave inside, and an ensemble of the members taken out
        computes what the ensemble did. What the ensemble does not keep of the original plan
        is not restored: the passes that made it, and (in ensembles merged by an older fergc)
        its TTA description; inspect lists the member's passes as 'ensemble-member'.

        With --predictions the arguments are what `fergc eval PLAN --predictions F.csv` wrote for
        each member on one split: the command prints each member's accuracy, its agreement with
        the first member (and how often either is right), with three or more members how often
        every two agree (a lower triangle), and the accuracy of the weighted mean of the
        probabilities, which is what the ensemble plan scores on that split (up to the files'
        six decimals), without running a member again. Members chosen from these figures are
        chosen on that split.

        EXAMPLES:
          fergc ensemble Models/trained/vgg16_finetuned.plan Models/trained/vgg16_finetuned_2.plan -o ensemble.plan
          fergc eval A.plan --data fer2013.csv --predictions a.csv   # and b.csv, c.csv likewise
          fergc ensemble --predictions a.csv b.csv c.csv --combinations
          fergc ensemble --member 2 Models/trained/best-ensemble.plan -o s7.plan   # its seed-7 member
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        let weights = try a.value("weights").map { text -> [Double] in
            try text.split(separator: ",", omittingEmptySubsequences: false).map {
                guard let v = Double($0.trimmingCharacters(in: .whitespaces)), v.isFinite, v >= 0 else {
                    throw UsageError(message: "--weights expects non-negative numbers separated by commas, got '\(text)'", command: spec.name)
                }
                return v
            }
        }
        if let k = a.value("member") { return try member(k, a) }
        if a.flag("predictions") { return try EnsemblePredictions.main(a, weights: weights, command: spec.name) }
        if a.flag("combinations") { throw UsageError(message: "--combinations needs --predictions", command: spec.name) }
        guard a.positional.count >= 2 else {
            throw UsageError(message: "expected at least two plan files, got \(a.positional.count)", command: spec.name)
        }
        guard let out = a.value("output") else { throw UsageError(message: "missing -o E.plan", command: spec.name) }
        var members: [EnsembleMember] = []
        for path in a.positional {
            do { members.append(EnsembleMember(label: path, plan: try readPlan(path: path))) } catch { throw CLIError(error.description) }
        }
        let plan: Plan
        do { plan = try ensemblePlans(members, weights: weights, name: a.value("name") ?? "ensemble") } catch { throw CLIError("\(error)") }
        do { try writePlan(plan, to: out) } catch { throw CLIError("\(out): \(error)") }
        let memberArena = members.map { $0.plan.memory?.arenaBytes ?? 0 }
        let count = plan.metadata.ensemble?.members.count ?? members.count
        let joined = count == members.count ? "" : " (from \(members.count) plans: an ensemble plan's members join one by one)"
        Console.out("wrote \(out): \(count) members\(joined), \(plan.steps.count) steps, weights "
            + (plan.metadata.ensemble?.members.map { String(format: "%.3g", $0.weight) }.joined(separator: ", ") ?? "") + "\n")
        Console.out("arena \(megabytes(plan.memory?.arenaBytes ?? 0)) (the members' arenas: "
            + memberArena.map(megabytes).joined(separator: " + ") + " = \(megabytes(memberArena.reduce(0, +))))\n")
        let values = { (p: Plan) in p.parameters.values.reduce(0) { $0 + $1.count } }
        let separate = members.map { values($0.plan) }.reduce(0, +), stored = values(plan)
        if stored < separate {
            Console.out("parameters \(stored) values stored (the members' \(separate): \(separate - stored) shared, equal in name, shape and value to an earlier member's)\n")
        }
    }

    /// `--member K E.plan -o M.plan`: one member of an ensemble plan as a plan of its own.
    static func member(_ text: String, _ a: ParsedArguments) throws {
        for other in ["weights", "name"] where a.value(other) != nil {
            throw UsageError(message: "--member takes no --\(other): it writes one member as it is", command: spec.name)
        }
        for other in ["predictions", "combinations"] where a.flag(other) {
            throw UsageError(message: "--member and --\(other) do not go together", command: spec.name)
        }
        guard let k = Int(text), k >= 1 else {
            throw UsageError(message: "--member expects a member number from 1, got '\(text)'", command: spec.name)
        }
        guard a.positional.count == 1 else {
            throw UsageError(message: "--member expects one ensemble plan, got \(a.positional.count) files", command: spec.name)
        }
        guard let out = a.value("output") else { throw UsageError(message: "missing -o M.plan", command: spec.name) }
        let path = a.positional[0]
        let e: Plan
        do { e = try readPlan(path: path) } catch { throw CLIError(error.description) }
        let plan: Plan
        do { plan = try ensembleMember(e, number: k) } catch { throw CLIError("\(path): \(error)") }
        do { try writePlan(plan, to: out) } catch { throw CLIError("\(out): \(error)") }
        let weight = e.metadata.ensemble.map { String(format: "%.3g", $0.members[k - 1].weight) } ?? "?"
        Console.out("wrote \(out): member \(k) of \(e.metadata.ensemble?.members.count ?? 0) of \(path), '\(plan.metadata.modelName)' "
            + "(weight \(weight) there), \(plan.steps.count) steps, \(plan.parameters.values.reduce(0) { $0 + $1.count }) parameters, "
            + "arena \(megabytes(plan.memory?.arenaBytes ?? 0))\n")
    }
}
