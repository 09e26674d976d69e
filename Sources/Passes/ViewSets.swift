// Several view sets in one plan (`fergc compile --tta center_flip+whole_flip`): each set is a
// TTA kind applied to the compiled plan, or `whole_flip`, the whole face and its mirror image
// for a model trained on crops (the model recompiled at the face's side from the plan's own
// values: GraphIR/InputSide.swift). The sets are merged as an ensemble weighted by their view
// counts, so the output is the mean softmax over every view; the sets share the model's
// weights (one copy in the file, one Winograd transform per layer in the executor).

import GraphIR
import Runtime

public enum ViewSet: Equatable, Sendable, CustomStringConvertible {
    case crops(TTAKind)
    case wholeFlip

    public static let wholeFlipName = "whole_flip"
    public static var names: [String] { TTAKind.allCases.map(\.rawValue) + [wholeFlipName] }

    public var description: String {
        switch self {
        case .crops(let k): return k.rawValue
        case .wholeFlip: return ViewSet.wholeFlipName
        }
    }

    /// "center_flip+whole_flip" -> the sets; nil if a name is unknown or a set repeats.
    public static func parse(_ text: String) -> [ViewSet]? {
        var sets: [ViewSet] = []
        for part in text.split(separator: "+", omittingEmptySubsequences: false) {
            let name = String(part)
            let set: ViewSet
            if name == wholeFlipName { set = .wholeFlip } else if let k = TTAKind(rawValue: name) { set = .crops(k) } else { return nil }
            if sets.contains(set) { return nil }
            sets.append(set)
        }
        return sets.isEmpty ? nil : sets
    }
}

/// `plan` (compiled from `model` with `options`) with the view sets `sets` over faces of side
/// `face`: one set is `applyTTA`'s plan (or, for `whole_flip`, the model at the face's side with
/// the face and its mirror image); several are merged, each weighted by its number of views.
public func applyViewSets(_ plan: Plan, sets: [ViewSet], model: Graph, options: CompileOptions, face: Int = 48) throws -> Plan {
    guard !sets.isEmpty else { throw PassError(pass: "tta", message: "no view sets") }
    var members: [EnsembleMember] = [], counts: [Double] = [], described: [String] = []
    let side = plan.metadata.inputShape.last ?? face
    for set in sets {
        let member: Plan, viewSide: Int
        switch set {
        case .crops(let kind):
            member = try applyTTA(plan, kind: kind, face: face)
            viewSide = side
        case .wholeFlip:
            guard side < face else {
                throw PassError(pass: "tta", message: "--tta whole_flip shows a model trained on crops the whole \(face)x\(face) face; this model takes \(side)x\(side) inputs, the whole face already: use --tta flip")
            }
            let resized: Graph
            do { resized = try withInputSide(model, side: face) } catch {
                throw PassError(pass: "tta", message: "whole_flip: \(error)")
            }
            var o = options
            o.weights = nil
            o.planWeights = plan.parameters
            var whole = try compile(resized, o).plan
            // As the plan was stored and computes (its values are already rounded if f16).
            whole.metadata.sourceHash = plan.metadata.sourceHash
            whole.metadata.weightsDType = plan.metadata.weightsDType
            whole.metadata.computeDType = plan.metadata.computeDType
            if whole.metadata.computeDType != nil, let threads = whole.memory?.workspaceThreads {
                let bytes = executorWorkspaceBytes(whole, threads: threads)
                whole.memory?.workspaceBytes = bytes
            }
            member = try applyTTA(whole, kind: .flip, face: face)
            viewSide = face
        }
        // The views the TTA step of the member takes (its buffers' view count).
        let views = member.buffers.compactMap(\.views).max() ?? 1
        members.append(EnsembleMember(label: set.description, plan: member))
        counts.append(Double(views))
        described.append("\(views) of \(viewSide)x\(viewSide) (\(set))")
    }
    if members.count == 1 { return members[0].plan }
    var merged = try ensemblePlans(members, weights: counts, name: model.name)
    merged.metadata.sourceHash = plan.metadata.sourceHash
    let total = Int(counts.reduce(0, +))
    merged.metadata.tta = "\(sets.map(\.description).joined(separator: "+")): \(total) views from each \(face)x\(face) face, "
        + described.joined(separator: " and ") + ", mean softmax"
    return merged
}
