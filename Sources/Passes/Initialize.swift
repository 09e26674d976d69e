// Initial values of parameters and state, as Keras draws them: Glorot-uniform kernels and zero
// biases by default, ones for batchnorm gamma and running variance. Each tensor has its own
// generator seeded by (seed, name), so adding a layer does not change the others' weights.

import GraphIR

/// Fan-in and fan-out of a weight in fergc's layouts: conv [O, C, KH, KW], dense [O, I].
func fans(_ shape: [Int]) -> (fanIn: Double, fanOut: Double) {
    switch shape.count {
    case 4:
        let receptive = Double(shape[2] * shape[3])
        return (Double(shape[1]) * receptive, Double(shape[0]) * receptive)
    case 2:
        return (Double(shape[1]), Double(shape[0]))
    case 1:
        return (Double(shape[0]), Double(shape[0]))
    default:
        let n = Double(shape.reduce(1, *))
        return (n, n)
    }
}

/// Keras' truncated normal: a normal redrawn outside two standard deviations, scaled so the
/// result has the requested standard deviation.
private func truncatedNormal(_ rng: inout SplitMix64, stddev: Double) -> Double {
    while true {
        let z = rng.normal()
        if abs(z) <= 2 { return z * stddev / 0.879_625_661_034_239_78 }
    }
}

public func initialValues(_ initializer: Initializer, shape: [Int], seed: UInt64, name: String) -> [Float] {
    let n = shape.reduce(1, *)
    var rng = SplitMix64(seed: mixSeed(seed, stringHash(name)))
    let (fanIn, fanOut) = fans(shape)
    switch initializer {
    case .zeros: return [Float](repeating: 0, count: n)
    case .ones: return [Float](repeating: 1, count: n)
    case .constant(let v): return [Float](repeating: Float(v), count: n)
    case .glorotUniform:
        let limit = (6 / (fanIn + fanOut)).squareRoot()
        return (0..<n).map { _ in Float((rng.unit() * 2 - 1) * limit) }
    case .glorotNormal:
        let s = (2 / (fanIn + fanOut)).squareRoot()
        return (0..<n).map { _ in Float(truncatedNormal(&rng, stddev: s)) }
    case .heNormal:
        let s = (2 / fanIn).squareRoot()
        return (0..<n).map { _ in Float(truncatedNormal(&rng, stddev: s)) }
    case .heUniform:
        let limit = (6 / fanIn).squareRoot()
        return (0..<n).map { _ in Float((rng.unit() * 2 - 1) * limit) }
    }
}

/// Initial values for every parameter and state value of a graph, by name.
public func initialWeights(_ graph: Graph, seed: UInt64) -> [String: [Float]] {
    var out: [String: [Float]] = [:]
    for id in graph.parameters + graph.states {
        let v = graph[id]
        let initializer: Initializer
        switch v.kind {
        case .parameter(let p): initializer = p.initializer
        case .state(let i): initializer = i
        case .input, .intermediate: continue
        }
        out[v.name] = initialValues(initializer, shape: v.type.perSample, seed: seed, name: v.name)
    }
    return out
}
