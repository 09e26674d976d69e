// The same model fed square images of another side: the image input's spatial size changes and
// every shape after it is inferred again, node by node. A pooling whose window covers its whole
// input (a global pooling: size = stride = the map's side, one output position) keeps covering
// it, so a model that pools globally before its dense layers has exactly the same parameters at
// the new side, and a plan compiled at one side gives its weights to the model at the other
// (`fergc compile M.graph --input-side 48 --weights M.plan`: a model trained on 40x40 crops
// shown the whole 48x48 face). A model whose parameter shapes depend on the side (a flatten of
// a 5x5 map into a dense layer) is refused at the node where they stop matching.

public struct InputSideError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// `graph` with its image input (the one f32 input of shape [N, C, S, S]) at `side` x `side`.
public func withInputSide(_ graph: Graph, side: Int) throws(InputSideError) -> Graph {
    let images = graph.inputs.filter { graph[$0].type.dtype == .f32 && graph[$0].type.rank == 4 }
    guard images.count == 1, let x = images.first else {
        throw InputSideError(message: "'\(graph.name)': --input-side needs one f32 image input [N, C, S, S], the model has \(images.count)")
    }
    let old = graph[x].type.perSample
    guard old[1] == old[2] else {
        throw InputSideError(message: "'\(graph.name)': the input '\(graph[x].name)' is \(old[1])x\(old[2]), not square")
    }
    guard (1...4096).contains(side) else {
        throw InputSideError(message: "--input-side expects a side from 1 to 4096, got \(side)")
    }
    var g = graph
    g.setType(x, TensorType(.f32, [graph[x].type.dims[0], .fixed(old[0]), .fixed(side), .fixed(side)]))
    for (i, node) in graph.nodes.enumerated() {
        var op = node.op
        let was = node.inputs.map { graph[$0].type }, now = node.inputs.map { g[$0].type }
        switch op {
        case .maxpool(var a), .avgpool(var a):
            // Global: the window is the whole (square) map and moves once.
            if let t = was.first, t.rank == 4, t.perSample[1] == t.perSample[2], a.size == t.perSample[1],
               a.stride == a.size, a.padding == .valid, let n = now.first, n.rank == 4 {
                guard n.perSample[1] == n.perSample[2] else {
                    throw InputSideError(message: "'\(node.name)' pools its whole \(t.perSample[1])x\(t.perSample[2]) map globally, but at side \(side) the map is \(n.perSample[1])x\(n.perSample[2])")
                }
                a.size = n.perSample[1]
                a.stride = a.size
                if case .maxpool = op { op = .maxpool(a) } else { op = .avgpool(a) }
            }
        default: break
        }
        let types: [TensorType]
        do { types = try inferTypes(op, now) } catch {
            throw InputSideError(message: "'\(node.name)' (\(op.name)) at input side \(side): \(error.message); only a model whose maps end in a global pooling before its dense layers takes another side")
        }
        for (o, t) in zip(node.outputs, types) {
            if case .intermediate = g[o].kind { g.setType(o, t); continue }
            guard g[o].type == t else {
                throw InputSideError(message: "'\(node.name)' writes '\(g[o].name)' as \(t) at input side \(side), not \(g[o].type)")
            }
        }
        g.nodes[i].op = op
    }
    return g
}
