import XCTest
import GraphIR
@testable import Frontend

/// Blocks (Sources/Frontend/Blocks.swift): a call lowers to exactly the graph of its body written
/// out by hand with the names the block gives, and every misuse is a located error.
final class BlockTests: XCTestCase {
    let convBnRelu = """
        block conv_bn_relu(x, filters, kernel=3) {
          conv = conv2d(x, filters=filters, kernel=kernel, padding=same, bias=false, init=he_normal)
          bn = batchnorm(conv, epsilon=1e-5, momentum=0.9)
          out = relu(bn)
          return out
        }

        """

    /// The same graph, written with blocks and written out: the printed forms are identical.
    func testCallEqualsTheBodyWrittenOut() throws {
        let withBlocks = header + convBnRelu + """
            block stage(x, filters) {
              a = conv_bn_relu(x, filters=filters)
              b = conv_bn_relu(a, filters)
              pool = maxpool(b, size=2, stride=2)
              return pool
            }
            s1 = stage(x, filters=4)
            s2 = stage(s1, 8)
            c = conv_bn_relu(s2, filters=8, kernel=1)
            f = flatten(c)
            logits = dense(f, units=7)
            loss = softmax_cross_entropy(logits, labels)
            output logits, loss

            """
        let byHand = header + """
            s1.a.conv = conv2d(x, filters=4, kernel=3, padding=same, bias=false, init=he_normal)
            s1.a.bn = batchnorm(s1.a.conv, epsilon=1e-5, momentum=0.9)
            s1.a = relu(s1.a.bn)
            s1.b.conv = conv2d(s1.a, filters=4, kernel=3, padding=same, bias=false, init=he_normal)
            s1.b.bn = batchnorm(s1.b.conv, epsilon=1e-5, momentum=0.9)
            s1.b = relu(s1.b.bn)
            s1 = maxpool(s1.b, size=2, stride=2)
            s2.a.conv = conv2d(s1, filters=8, kernel=3, padding=same, bias=false, init=he_normal)
            s2.a.bn = batchnorm(s2.a.conv, epsilon=1e-5, momentum=0.9)
            s2.a = relu(s2.a.bn)
            s2.b.conv = conv2d(s2.a, filters=8, kernel=3, padding=same, bias=false, init=he_normal)
            s2.b.bn = batchnorm(s2.b.conv, epsilon=1e-5, momentum=0.9)
            s2.b = relu(s2.b.bn)
            s2 = maxpool(s2.b, size=2, stride=2)
            c.conv = conv2d(s2, filters=8, kernel=1, padding=same, bias=false, init=he_normal)
            c.bn = batchnorm(c.conv, epsilon=1e-5, momentum=0.9)
            c = relu(c.bn)
            f = flatten(c)
            logits = dense(f, units=7)
            loss = softmax_cross_entropy(logits, labels)
            output logits, loss

            """
        let a = try XCTUnwrap(compiles(withBlocks))
        let b = try XCTUnwrap(compiles(byHand))
        XCTAssertEqual(a.printed(), b.printed())
        XCTAssertNotNil(a.id(named: "s2.b.conv.weight"))
        XCTAssertNotNil(a.id(named: "c.bn.gamma"))
        XCTAssertEqual("\(a[try XCTUnwrap(a.id(named: "c.conv.weight"))].type)", "f32[8, 8, 1, 1]")
        // The expanded form is ordinary text: it compiles back to the same graph.
        XCTAssertEqual(try XCTUnwrap(compiles(a.printed())).printed(), a.printed())
    }

    /// Several returned values, a block's own params, lets and updates, and a top-level `let`
    /// read inside a block.
    func testReturnsParamsLetsAndGlobalLets() throws {
        let g = try XCTUnwrap(compiles(header + """
            let wd = 1e-4
            block scaled(x, k) {
              param gain: f32[1, 1, 1, 1], init=ones
              let width = k
              c = conv2d(x, filters=width, l2=wd)
              y, mask = dropout_train(c, rate=0.5)
              return y, c
            }
            a, b = scaled(x, k=2)
            output a, b

            """))
        XCTAssertNotNil(g.id(named: "a.gain"))
        XCTAssertEqual("\(g[try XCTUnwrap(g.id(named: "a"))].type)", "f32[N, 2, 8, 8]")
        XCTAssertEqual("\(g[try XCTUnwrap(g.id(named: "b"))].type)", "f32[N, 2, 8, 8]")
        XCTAssertNotNil(g.id(named: "a.mask"))
        XCTAssertNil(g.id(named: "a.width"), "a let is not a value")
        if case .parameter(let info) = g[try XCTUnwrap(g.id(named: "b.weight"))].kind {
            XCTAssertEqual(info.l2, 1e-4)
        } else {
            XCTFail("b.weight is not a parameter")
        }
    }

    // MARK: errors at the definition

    func testDefinitionErrors() {
        expectError(header + "block relu(x) {\n  y = relu(x)\n  return y\n}\n", 5, 7, "'relu' is an op; a block needs another name")
        expectError(header + "block b(x, x) {\n  y = relu(x)\n  return y\n}\n", 5, 12, "block 'b' has two parameters named 'x'")
        expectError(header + "block b(x) {\n  y = relu(x)\n}\n", 7, 1, "block 'b' must end with 'return NAME': the values a call defines")
        expectError(header + "block b(x) {\n  x = relu(x)\n  return x\n}\n", 6, 3, "'x' is a parameter of block 'b'; name the value otherwise")
        expectError(header + "block b(x) {\n  y = relu(x)\n  y = relu(y)\n  return y\n}\n", 7, 3, "'y' is already defined in block 'b'")
        expectError(header + "block b(v) {\n  y = relu(x)\n  return y\n}\n", 6, 12,
                    "'x' is not a parameter of block 'b' nor a value it defined before; a block reads only those (pass 'x' as a parameter)")
        expectError(header + "block b(x) {\n  y = b(x)\n  return y\n}\n", 6, 7, "block 'b' calls itself; a block may call only blocks defined before it")
        expectError(header + "block b(x) {\n  y = rleu(x)\n  return y\n}\n", 6, 7, "unknown op or block 'rleu' (did you mean 'relu'?)")
        expectError(header + "block b(x) {\n  return y\n  y = relu(x)\n}\n", 6, 3, "'return' must be the last statement of block 'b'")
        expectError(header + "block b(x) {\n  y = relu(x)\n  return x\n}\n", 7, 10, "block 'b' returns its parameter 'x'; a block returns values it computes")
        expectError(header + "block b(x) {\n  y = relu(x)\n  return z\n}\n", 7, 10, "block 'b' returns 'z', which it does not define")
        expectError(header + "block b(x) {\n  y = relu(x)\n  return y, y\n}\n", 7, 13, "block 'b' returns 'y' twice")
        expectError(header + "block b(x) {\n  input z: f32[N, 1]\n  return z\n}\n", 6, 3,
                    "a block's inputs are its parameters: 'input' belongs at the top of the file")
        expectError(header + "block b(x) {\n  output x\n  return x\n}\n", 6, 3,
                    "a block holds nodes, 'let', 'param' and 'state' statements and a 'return'; this belongs at the top of the file")
        expectError(header + "block b(x) {\n  block c(y) {\n    z = relu(y)\n    return z\n  }\n  return x\n}\n", 6, 3,
                    "blocks are defined at the top level, not inside block 'b'")
        expectError(header + "y = relu(x)\nreturn y\n", 6, 1, "'return' outside a block: it ends a block's body")
        let twice = header + "block b(x) {\n  y = relu(x)\n  return y\n}\nblock b(x) {\n  y = relu(x)\n  return y\n}\n"
        let d = expectError(twice, 9, 7, "block 'b' is already defined")
        XCTAssertEqual(d?.notes.first?.line, 5)
        expectError(header + "block b(x) {\n  y = relu(x)\n  return y\n", 5, 12, "unterminated '{': no matching '}' before the end of the file")
    }

    /// A block's positional arguments inside another block may be attribute values (a symbol
    /// here), but not the file's tensors.
    func testPositionalAttributeArgumentsOfANestedCall() throws {
        let inner = "block inner(x, p) {\n  y = maxpool(x, size=3, stride=2, padding=p)\n  return y\n}\n"
        let g = try XCTUnwrap(compiles(header + inner + "block outer(x) {\n  z = inner(x, same)\n  return z\n}\nw = outer(x)\noutput w\n"))
        XCTAssertEqual("\(g[try XCTUnwrap(g.id(named: "w"))].type)", "f32[N, 1, 4, 4]")
        let d = try XCTUnwrap(expectError(header + inner + "block outer(x) {\n  z = inner(labels, same)\n  return z\n}\nw = outer(x)\n", 10, 13,
                                          "'labels' is not a parameter of block 'outer' nor a value it defined before; a block reads only those (pass 'labels' as a parameter)"))
        XCTAssertEqual(d.notes.map(\.line), [13])
    }

    // MARK: errors at a call

    func testCallErrors() {
        let def = header + convBnRelu  // lines 5-10; a call on line 11
        expectError(def + "y = conv_bn_relu(x)\n", 11, 19,
                    "missing argument 'filters' for block 'conv_bn_relu'; it takes (x, filters, kernel=3)")
        expectError(def + "y = conv_bn_relu(x, filters=4, kernal=1)\n", 11, 32,
                    "block 'conv_bn_relu' has no parameter 'kernal' (did you mean 'kernel'?); it takes (x, filters, kernel=3)")
        expectError(def + "y = conv_bn_relu(x, 4, 3, 2)\n", 11, 27, "too many arguments: block 'conv_bn_relu' takes (x, filters, kernel=3)")
        expectError(def + "y = conv_bn_relu(x, 4, filters=4)\n", 11, 24, "'filters' is given twice in the call of block 'conv_bn_relu'")
        expectError(def + "y = conv_bn_relu(filters=4, x)\n", 11, 29, "positional argument after the keyword argument 'filters'; positional ones come first")
        expectError(def + "a, b = conv_bn_relu(x, filters=4)\n", 11, 1, "block 'conv_bn_relu' returns 1 value (out), but 2 names were given")
        expectError(def + "conv_bn_relu(x, filters=4)\n", 11, 1, "the result of block 'conv_bn_relu' must be named, as in 'y = conv_bn_relu(...)'")
        expectError(def + "y = relu(x)\ny = conv_bn_relu(x, filters=4)\n", 12, 1, "'y' is already defined")
        expectError(def + "y = conv_bn_relu(labels, filters=4)\n", 11, 18,
                    "a conv2d layer expects an input f32[N, C, H, W], but 'labels' is i32[N]")
    }

    /// An error inside the body is reported where the body says it, with a note at each call
    /// around it; a bad argument is reported at the argument.
    func testErrorInsideTheBodyNotesEachCall() throws {
        let source = header + """
            block inner(x, rate) {
              f = flatten(x)
              g = flatten(f)
              d = dropout(g, rate=rate)
              return d
            }
            block outer(x, rate=0.5) {
              y = inner(x, rate=rate)
              return y
            }

            """
        let d = try XCTUnwrap(expectError(source + "z = outer(x)\n", 7, 15,
                                          "flatten of 'z.y.f' does nothing: it is f32[N, 64], already flat (flatten takes [N, C, H, W])"))
        XCTAssertEqual(d.notes.map { "\($0.line):\($0.column)" }, ["6:3", "12:7", "15:5"])
        XCTAssertEqual(d.notes.map(\.message), ["'z.y.f' is f32[N, 64], defined here", "in the call of block 'inner' here",
                                                "in the call of block 'outer' here"])
        let bad = source.replacingOccurrences(of: "  f = flatten(x)\n  g = flatten(f)\n  d = dropout(g,", with: "  d = dropout(x,")
        let e = try XCTUnwrap(expectError(bad + "z = outer(x, rate=2)\n", 13, 19, "attribute 'rate': must be in [0, 1), got 2.0"))
        XCTAssertEqual(e.notes.map { "\($0.line):\($0.column)" }, ["10:7"], "no note for the call on the argument's own line")
    }

    /// A block doubling its calls per level would expand to 2^20 statements: refused, quickly.
    func testExpansionIsBounded() {
        var source = header + "block b0(x) {\n  y = relu(x)\n  return y\n}\n"
        for i in 1...20 {
            source += "block b\(i)(x) {\n  a = b\(i - 1)(x)\n  c = b\(i - 1)(a)\n  return c\n}\n"
        }
        source += "y = b20(x)\n"
        do {
            _ = try Frontend.compile(source: source, file: "t.graph")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.message, "the blocks' calls expand to more than \(maxBlockStatements) statements")
            XCTAssertEqual(error.notes.last?.line, 5 + 4 + 20 * 5, "the note chain ends at the file's call")
        }
    }
}
