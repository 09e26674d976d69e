import XCTest
import GraphIR
@testable import Frontend

/// The verifier rejects malformed graphs built by hand (the frontend never produces them).
final class VerifierTests: XCTestCase {
    /// x: f32[N, 4] input, w: f32[4, 4] parameter, it: f32[] state; no nodes yet.
    private func base() throws -> (Graph, x: ValueID, w: ValueID, it: ValueID) {
        var g = Graph(name: "v")
        let x = try g.addValue(Value(name: "x", type: .batched([4]), kind: .input))
        let w = try g.addValue(Value(name: "w", type: .fixed([4, 4]), kind: .parameter(ParameterInfo(initializer: .zeros))))
        let it = try g.addValue(Value(name: "it", type: .scalar, kind: .state(.zeros)))
        return (g, x, w, it)
    }

    private func expectRejected(_ g: Graph, _ message: String, node: String?, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try g.verify()
            XCTFail("expected the verifier to reject the graph", file: file, line: line)
        } catch {
            XCTAssertEqual(error.message, message, file: file, line: line)
            XCTAssertEqual(error.node, node, file: file, line: line)
        }
    }

    func testValidGraphPasses() throws {
        var (g, x, w, _) = try base()
        let y = try g.addNode(.dense, inputs: [x, w], outputNames: ["y"])
        g.outputs = y
        XCTAssertNoThrow(try g.verify())
    }

    func testReadBeforeDefinition() throws {
        var (g, x, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        let b = try g.addValue(Value(name: "b", type: .batched([4]), kind: .intermediate))
        g.nodes = [Node(name: "b", op: .relu, inputs: [a], outputs: [b]),
                   Node(name: "a", op: .relu, inputs: [x], outputs: [a])]
        expectRejected(g, "reads 'a' before it is defined", node: "b")
    }

    func testCycleIsReadBeforeDefinition() throws {
        var (g, _, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        g.nodes = [Node(name: "a", op: .relu, inputs: [a], outputs: [a])]
        expectRejected(g, "reads 'a' before it is defined", node: "a")
    }

    func testWrongOutputType() throws {
        var (g, x, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([5]), kind: .intermediate))
        g.nodes = [Node(name: "a", op: .relu, inputs: [x], outputs: [a])]
        expectRejected(g, "'a' has type f32[N, 5] but relu gives f32[N, 4]", node: "a")
    }

    func testShapeErrorInNode() throws {
        var (g, x, w, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        g.nodes = [Node(name: "a", op: .add, inputs: [x, w], outputs: [a])]
        expectRejected(g, "add needs inputs of one type, got f32[N, 4] and f32[4, 4]", node: "a")
    }

    func testOutputCountMismatch() throws {
        var (g, x, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        g.nodes = [Node(name: "a", op: .dropoutTrain(rate: 0.5), inputs: [x], outputs: [a])]
        expectRejected(g, "dropout_train has 2 outputs, node has 1", node: "a")
    }

    func testDefinedTwice() throws {
        var (g, x, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        g.nodes = [Node(name: "a", op: .relu, inputs: [x], outputs: [a]),
                   Node(name: "a2", op: .relu, inputs: [x], outputs: [a])]
        expectRejected(g, "defines 'a', which is already defined", node: "a2")
    }

    func testNodeDefinesAnInput() throws {
        var (g, x, _, _) = try base()
        g.nodes = [Node(name: "x", op: .relu, inputs: [x], outputs: [x])]
        expectRejected(g, "defines 'x', which is already defined", node: "x")
    }

    func testUpdateOfNonPersistentValue() throws {
        var (g, x, _, _) = try base()
        let s = try g.addValue(Value(name: "s", type: .scalar, kind: .intermediate))
        g.nodes = [Node(name: "s", op: .l2Penalty(factor: 1), inputs: [x], outputs: [s]),
                   Node(name: "increment.s", op: .increment, inputs: [s], outputs: [])]
        expectRejected(g, "increment writes 's', which is not a parameter or state", node: "increment.s")
    }

    func testReadAfterUpdate() throws {
        var (g, _, _, it) = try base()
        let y = try g.addValue(Value(name: "y", type: .scalar, kind: .intermediate))
        g.nodes = [Node(name: "increment.it", op: .increment, inputs: [it], outputs: []),
                   Node(name: "y", op: .scale(factor: 2), inputs: [it], outputs: [y])]
        expectRejected(g, "reads 'it' after the update 'increment.it' wrote it", node: "y")
    }

    func testMissingInputValue() throws {
        var (g, _, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        g.nodes = [Node(name: "a", op: .relu, inputs: [ValueID(99)], outputs: [a])]
        expectRejected(g, "input %99 does not exist", node: "a")
    }

    func testUndefinedOutput() throws {
        var (g, _, _, _) = try base()
        let a = try g.addValue(Value(name: "a", type: .batched([4]), kind: .intermediate))
        g.outputs = [a]
        expectRejected(g, "output %3 is not defined", node: nil)
    }

    func testTrainingLossMustExist() throws {
        var (g, _, _, _) = try base()
        g.training = TrainingConfig(loss: "nope", optimizer: .adam(lr: 1, AdamAttrs()))
        expectRejected(g, "the training loss 'nope' is not a value of the graph", node: nil)
    }

    func testAddValueRejectsDuplicates() throws {
        var (g, _, _, _) = try base()
        XCTAssertThrowsError(try g.addValue(Value(name: "x", type: .scalar, kind: .input))) { error in
            XCTAssertEqual(error as? GraphError, .duplicateValue("x"))
        }
    }

    func testAddNodeReportsShapeErrorInputs() throws {
        var (g, x, w, _) = try base()
        XCTAssertThrowsError(try g.addNode(.add, inputs: [x, w], outputNames: ["s"])) { error in
            guard case .shape(let node, let e) = error as? GraphError else { return XCTFail("\(error)") }
            XCTAssertEqual(node, "s")
            XCTAssertEqual(e.inputs, [0, 1])
        }
    }

    func testEveryModelFileVerifies() throws {
        for name in ["vgg_scratch", "vgg_tuned", "tiny"] {
            let g = try Frontend.compile(path: "\(modelsDir)/\(name).graph")
            XCTAssertNoThrow(try g.verify(), name)
        }
    }
}

let modelsDir: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/") + "/Models"
}()
