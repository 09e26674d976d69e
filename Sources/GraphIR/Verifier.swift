// The verifier: a graph is well formed when every value is defined exactly once before it is
// used (so the node order is a topological order and the graph is acyclic), every node's
// output types are what shape inference gives for its inputs, update nodes write only
// parameters and state and come after every ordinary reader of what they write, and every
// graph output is defined. Passes run it after every step in tests.

public struct VerifierError: Error, Sendable, Equatable, CustomStringConvertible {
    public var node: String?
    public var message: String
    public var description: String { node.map { "\($0): \(message)" } ?? message }
}

extension Graph {
    public func verify() throws(VerifierError) {
        var defined = [Bool](repeating: false, count: values.count)
        var written = [String?](repeating: nil, count: values.count)  // by which update node
        for (i, v) in values.enumerated() where v.kind == .input || v.kind.isPersistent {
            defined[i] = true
        }
        var seen = Set<String>()
        for (i, v) in values.enumerated() {
            if !seen.insert(v.name).inserted {
                throw VerifierError(node: nil, message: "value name '\(v.name)' is used twice (\(ValueID(i)))")
            }
        }
        for node in nodes {
            for input in node.inputs {
                guard input.index >= 0, input.index < values.count else {
                    throw VerifierError(node: node.name, message: "input \(input) does not exist")
                }
                guard defined[input.index] else {
                    throw VerifierError(node: node.name, message: "reads '\(self[input].name)' before it is defined")
                }
                if !node.op.isUpdate, let writer = written[input.index] {
                    throw VerifierError(node: node.name, message: "reads '\(self[input].name)' after the update '\(writer)' wrote it")
                }
            }
            let expected: [TensorType]
            do {
                expected = try inferTypes(node.op, node.inputs.map { self[$0].type })
            } catch {
                throw VerifierError(node: node.name, message: error.message)
            }
            guard expected.count == node.outputs.count else {
                throw VerifierError(node: node.name, message: "\(node.op.name) has \(expected.count) outputs, node has \(node.outputs.count)")
            }
            for (o, t) in zip(node.outputs, expected) {
                guard o.index >= 0, o.index < values.count else {
                    throw VerifierError(node: node.name, message: "output \(o) does not exist")
                }
                guard !defined[o.index] else {
                    throw VerifierError(node: node.name, message: "defines '\(self[o].name)', which is already defined")
                }
                guard self[o].kind == .intermediate else {
                    throw VerifierError(node: node.name, message: "defines '\(self[o].name)', which is an input, parameter or state")
                }
                guard self[o].type == t else {
                    throw VerifierError(node: node.name, message: "'\(self[o].name)' has type \(self[o].type) but \(node.op.name) gives \(t)")
                }
                defined[o.index] = true
            }
            for position in node.op.writtenInputs {
                let target = node.inputs[position]
                guard self[target].kind.isPersistent else {
                    throw VerifierError(node: node.name, message: "\(node.op.name) writes '\(self[target].name)', which is not a parameter or state")
                }
                written[target.index] = node.name
            }
        }
        for o in outputs {
            guard o.index >= 0, o.index < values.count, defined[o.index] else {
                throw VerifierError(node: nil, message: "output \(o) is not defined")
            }
        }
        if let t = training, id(named: t.loss) == nil {
            throw VerifierError(node: nil, message: "the training loss '\(t.loss)' is not a value of the graph")
        }
    }
}
