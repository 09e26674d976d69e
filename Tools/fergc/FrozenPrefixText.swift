// How `fergc explain` describes a training plan's frozen prefix (the `frozen-prefix` pass).

import Runtime

func frozenPrefixText(_ p: FrozenPrefixInfo) -> String {
    let bytes = p.outputElementsPerSample * 4
    return "frozen prefix (pass frozen-prefix): steps 0..<\(p.steps) compute '\(p.output)' \(p.outputPerSample) from '\(p.input)' "
        + "and \(p.frozenParameters.count) frozen parameters alone; fergc train computes it once per image (\(bytes) bytes each) "
        + "and runs steps \(p.steps)... on the cached values in later epochs (not with augmentation)"
}
