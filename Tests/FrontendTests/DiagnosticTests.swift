import XCTest
import GraphIR
@testable import Frontend

/// Malformed input: each test asserts the error's line, column and message (and notes where
/// they matter). `header` is 4 lines, so the first line after it is line 5.
final class DiagnosticTests: XCTestCase {
    // MARK: rendering

    func testRenderingWithNotes() {
        let d = expectError(header + "y = relu(x)\ny = relu(x)\n", 6, 1, "'y' is already defined")
        XCTAssertEqual(d?.description, """
            t.graph:6:1: error: 'y' is already defined
            y = relu(x)
            ^
            t.graph:5:1: note: 'y' was first defined here
            y = relu(x)
            ^

            """)
    }

    // MARK: names and ops

    func testUnknownOp() {
        let d = expectError(header + "y = conv2(x, filters=8)\n", 5, 5, "unknown op 'conv2' (did you mean 'conv2d'?)")
        XCTAssertEqual(d?.description, """
            t.graph:5:5: error: unknown op 'conv2' (did you mean 'conv2d'?)
            y = conv2(x, filters=8)
                ^

            """)
    }

    func testUnknownOpWithoutSuggestion() {
        expectError(header + "y = frobnicate(x)\n", 5, 5, "unknown op 'frobnicate'")
    }

    func testUnknownLayerAttribute() {
        expectError(header + "y = conv2d(x, filters=8, strid=2)\n", 5, 26,
                    "unknown attribute 'strid' for the conv2d layer (did you mean 'stride'?)")
    }

    func testUnknownOpAttribute() {
        expectError(header + "p = maxpool(x, sise=2)\n", 5, 16, "unknown attribute 'sise' for maxpool (did you mean 'size'?)")
    }

    func testUnknownAttributeListsValidOnes() {
        expectError(header + "p = maxpool(x, window=2)\n", 5, 16,
                    "unknown attribute 'window' for maxpool (valid: size, stride, padding)")
        expectError(header + "r = relu(x, alpha=2)\n", 5, 13, "unknown attribute 'alpha': relu takes no attributes")
    }

    func testMisspeltRequiredAttribute() {
        expectError(header + "d = dropout(x, rat=0.5)\n", 5, 16, "unknown attribute 'rat' for dropout (did you mean 'rate'?)")
    }

    func testUnknownValueName() {
        expectError(header + "y = relu(xx)\n", 5, 10, "unknown value 'xx' (did you mean 'x'?)")
        expectError(header + "y = relu(q)\n", 5, 10, "unknown value 'q'")
    }

    func testValueRedefinedHasNote() {
        let d = expectError(header + "y = relu(x)\ny = relu(x)\n", 6, 1, "'y' is already defined")
        XCTAssertEqual(d?.notes.first.map { "\($0.line):\($0.column) \($0.message)" }, "5:1 'y' was first defined here")
    }

    func testLayerCreatedNameCollides() {
        let d = expectError(header + "param c.weight: f32[2, 2]\nc = conv2d(x, filters=4)\n", 6, 1,
                            "'c.weight' is already defined (the conv2d layer 'c' creates it)")
        XCTAssertEqual(d?.notes.first?.line, 5)
    }

    func testLetConstantUsedAsValue() {
        expectError(header + "let k = 3\ny = relu(k)\n", 6, 10,
                    "'k' is a let constant, not a tensor value; use it as an attribute value (key=k)")
    }

    // MARK: attribute values

    func testWrongAttributeType() {
        expectError(header + "d = dropout(x, rate=high)\n", 5, 21, "attribute 'rate' must be a number, got high")
        expectError(header + "y = conv2d(x, filters=4.5)\n", 5, 23, "attribute 'filters' must be an integer, got 4.5")
        expectError(header + "y = conv2d(x, filters=4, bias=yes)\n", 5, 31, "attribute 'bias' must be true or false, got yes")
    }

    func testInvalidAttributeValue() {
        expectError(header + "d = dropout(x, rate=1.5)\n", 5, 21, "attribute 'rate': must be in [0, 1), got 1.5")
        expectError(header + "d = dropout(x, rate=-0.1)\n", 5, 21, "attribute 'rate': must be in [0, 1), got -0.1")
        expectError(header + "y = conv2d(x, filters=0)\n", 5, 23, "attribute 'filters': must be at least 1, got 0")
        expectError(header + "p = maxpool(x, stride=0)\n", 5, 23, "attribute 'stride': must be at least 1, got 0")
    }

    func testMissingRequiredAttributes() {
        expectError(header + "y = conv2d(x, kernel=3)\n", 5, 5, "missing required attribute 'filters' for the conv2d layer")
        expectError(header + "f = flatten(x)\ny = dense(f)\n", 6, 5, "missing required attribute 'units' for the dense layer")
        expectError(header + "d = dropout(x)\n", 5, 5, "missing required attribute 'rate' for dropout")
    }

    func testSymbolDidYouMean() {
        expectError(header + "p = maxpool(x, padding=sme)\n", 5, 24,
                    "attribute 'padding' must be one of same, valid, got sme (did you mean 'same'?)")
        expectError(header + "y = conv2d(x, filters=4, activation=relux)\n", 5, 37,
                    "attribute 'activation' must be one of none, relu, leaky_relu, got relux (did you mean 'relu'?)")
    }

    func testLetNameDidYouMean() {
        expectError(header + "let wd = 1e-6\ny = conv2d(x, filters=4, l2=wdd)\n", 6, 29,
                    "unknown name 'wdd' for attribute 'l2' (did you mean 'wd'?)")
    }

    func testLetValueErrorNotesTheLet() {
        let d = expectError(header + "let r = 2\nd = dropout(x, rate=r)\n", 6, 21, "attribute 'rate': must be in [0, 1), got 2.0")
        XCTAssertEqual(d?.notes.first?.line, 5)
        XCTAssertEqual(d?.notes.first?.message, "'r' is defined here")
    }

    func testAttributeGivenTwice() {
        let d = expectError(header + "d = dropout(x, rate=0.1, rate=0.2)\n", 5, 26, "attribute 'rate' is given twice")
        XCTAssertEqual(d?.notes.first?.column, 16)
    }

    func testUnknownInitializer() {
        expectError("model m\nparam w: f32[3, 3], init=glorot_unifrom\n", 2, 26,
                    "unknown initializer 'glorot_unifrom' for 'init' (did you mean 'glorot_uniform'?)")
        expectError("model m\nstate s: f32[3], init=he_normal\n", 2, 23,
                    "attribute 'init': he_normal is not allowed here; use one of zeros, ones, constant(V)")
    }

    func testKernelList() {
        expectError(header + "y = conv2d(x, filters=4, kernel=[3])\n", 5, 33,
                    "attribute 'kernel' must be an integer or a list [kh, kw], got [3]")
    }

    func testMaxNormOnVector() {
        expectError("model m\nparam b: f32[3], max_norm=2\n", 2, 27,
                    "max_norm applies to dense [O, I] and conv [O, C, KH, KW] weights, not f32[3]")
        expectError("model m\nparam w: f32[3, 3], max_norm_axis=keras\n", 2, 21,
                    "max_norm_axis needs max_norm (the norm limit) in a param")
    }

    func testCallAsOpAttribute() {
        expectError(header + "s = scale(x, factor=f(2))\n", 5, 21,
                    "attribute 'factor' must be a plain value (number, name or list), not f(2)")
    }

    // MARK: shapes and arguments

    func testShapeMismatchNamesBothShapesWithNotes() {
        let d = expectError(header + "a = conv2d(x, filters=4)\nb = conv2d(x, filters=8)\nc = add(a, b)\n", 7, 5,
                            "add needs inputs of one type, got f32[N, 4, 8, 8] and f32[N, 8, 8, 8]")
        XCTAssertEqual(d?.notes.map { "\($0.line):\($0.column) \($0.message)" },
                       ["5:1 'a' is f32[N, 4, 8, 8], defined here", "6:1 'b' is f32[N, 8, 8, 8], defined here"])
    }

    func testChannelMismatchExplicitConv() {
        let d = expectError(header + "param w: f32[4, 3, 3, 3]\ny = conv2d(x, w)\n", 6, 5,
                            "conv2d input has 1 channels but the weight expects 3: input f32[N, 1, 8, 8], weight f32[4, 3, 3, 3]")
        XCTAssertEqual(d?.notes.map(\.line), [2, 5])
    }

    func testTooManyInputs() {
        expectError(header + "y = relu(x, x)\n", 5, 13, "too many inputs: relu takes 1 input, got 2")
    }

    func testTooFewInputs() {
        expectError(header + "l = softmax_cross_entropy(x)\n", 5, 28, "too few inputs: softmax_cross_entropy takes 2 inputs, got 1")
        expectError(header + "s = add(x)\n", 5, 10, "too few inputs: add takes 2 or more inputs, got 1")
    }

    func testPositionalAfterKeyword() {
        expectError(header + "s = add(x, factor=1, x)\n", 5, 22, "positional argument after the keyword argument 'factor'; inputs come first")
    }

    func testPositionalArgumentMustBeAName() {
        expectError(header + "y = relu(3)\n", 5, 10, "expected a value name, found 3 (attributes are written key=value)")
    }

    func testKernelDoesNotFit() {
        let d = expectError(header + "y = conv2d(x, filters=4, kernel=9, padding=valid)\n", 5, 5,
                            "conv2d kernel 9x9 does not fit the 8x8 input with padding=valid")
        XCTAssertEqual(d?.notes.map(\.line), [2])
    }

    func testFlattenOfRank2() {
        expectError(header + "f = flatten(x)\ng = flatten(f)\n", 6, 13,
                    "flatten of 'f' does nothing: it is f32[N, 64], already flat (flatten takes [N, C, H, W])")
    }

    func testDenseOn4D() {
        let d = expectError(header + "y = dense(x, units=10)\n", 5, 11,
                            "a dense layer expects an input f32[N, I], but 'x' is f32[N, 1, 8, 8]; flatten it first: 'f = flatten(x)'")
        XCTAssertEqual(d?.notes.first?.line, 2)
    }

    func testConvLayerOnFlatInput() {
        expectError(header + "f = flatten(x)\ny = conv2d(f, filters=4)\n", 6, 12,
                    "a conv2d layer expects an input f32[N, C, H, W], but 'f' is f32[N, 64]")
    }

    func testLabelsDtypeForCrossEntropy() {
        let src = header + "f = flatten(x)\nlogits = dense(f, units=7)\nl = softmax_cross_entropy(logits, f)\n"
        let d = expectError(src, 7, 5, "softmax_cross_entropy expects labels i32[N] for logits f32[N, 7], got f32[N, 64]")
        XCTAssertEqual(d?.notes.map(\.line), [6, 5])
        expectError("model m\ninput x: f32[N, 7]\ninput y: f32[N]\nl = softmax_cross_entropy(x, y)\n", 4, 5,
                    "softmax_cross_entropy expects labels i32[N] for logits f32[N, 7], got f32[N]")
        // The IR takes soft targets of the logits' shape (mixup's training step); a model file does not.
        expectError("model m\ninput x: f32[N, 7]\ninput y: f32[N, 7]\nl = softmax_cross_entropy(x, y)\n", 4, 30,
                    "softmax_cross_entropy expects labels i32[N] for logits f32[N, 7], got f32[N, 7] (soft targets are made by the trainer: train { mixup = ... })")
    }

    func testOutputTooLarge() {
        expectError(header + "y = conv2d(x, filters=100000000)\n", 5, 1,
                    "'y' would be f32[N, 100000000, 8, 8], more than 2147483648 elements per sample")
    }

    func testOutputCount() {
        expectError(header + "a = dropout_train(x, rate=0.5)\n", 5, 1, "dropout_train has 2 outputs, but 1 name was given")
    }

    func testResultMustBeNamed() {
        expectError(header + "relu(x)\n", 5, 1, "the result of relu must be named, as in 'y = relu(...)'")
    }

    func testUpdateHasNoOutputs() {
        expectError(header + "state it: f32[]\ny = increment(it)\n", 6, 1,
                    "increment updates its inputs in place and has no outputs; write it without 'y ='")
    }

    func testUpdateOfAnInput() {
        expectError(header + "increment(x)\n", 5, 11, "increment writes its input 1 in place, so 'x' must be a param or state, not an input")
    }

    func testReadAfterUpdate() {
        let d = expectError(header + "state it: f32[]\nincrement(it)\ny = scale(it, factor=2)\n", 7, 11,
                            "'it' is read after 'increment.it' updated it in place; updates must come after every reader")
        XCTAssertEqual(d?.notes.first.map { "\($0.line):\($0.column)" }, "6:1")
    }

    // MARK: outputs

    func testOutputOfUndefinedName() {
        expectError(header + "output y\n", 5, 8, "unknown value 'y'")
        expectError(header + "y = relu(x)\noutput yy\n", 6, 8, "unknown value 'yy' (did you mean 'y'?)")
    }

    func testDuplicateOutput() {
        expectError(header + "output x, x\n", 5, 11, "'x' is already an output")
    }

    // MARK: syntax

    func testUnterminatedParenthesis() {
        expectError(header + "y = relu(x\nz = relu(y)\n", 5, 9, "unterminated '(': no matching ')' before the end of the file")
    }

    func testUnterminatedBracket() {
        expectError(header + "y = conv2d(x, filters=4, kernel=[3, 3)\n", 5, 33, "unterminated '[': no matching ']' before ')'")
    }

    func testUnterminatedBrace() {
        expectError(header + "train {\n  loss = l\n", 5, 7, "unterminated '{': no matching '}' before the end of the file")
    }

    func testUnmatchedCloser() {
        let d = expectError(header + "y = relu(x]\n", 5, 11, "unexpected ']' with no matching '['")
        XCTAssertEqual(d?.notes.first?.column, 9)
        expectError(header + "y = relu(x))\n", 5, 12, "unexpected ')' with no matching '('")
    }

    func testUnexpectedToken() {
        expectError(header + "y = relu(x) z\n", 5, 13, "unexpected name 'z' after 'relu(...)'")
        expectError(header + "y relu(x)\n", 5, 3, "expected '=' or '(' after 'y', found name 'relu'")
        expectError(header + "= relu(x)\n", 5, 1, "unexpected '=' at the start of a statement")
        expectError(header + "y = relu(x,)\n", 5, 12, "expected a value (a number, a name or a [list]), found ')'")
    }

    func testUnexpectedCharacter() {
        expectError(header + "y = relu(x) @\n", 5, 13, "unexpected character '@'")
        expectError(header + "y = relu(x);\n", 5, 12, "unexpected character ';'")
    }

    func testBadNumberLiterals() {
        expectError(header + "d = dropout(x, rate=0.4.1)\n", 5, 21, "bad number literal '0.4.1'")
        expectError(header + "d = dropout(x, rate=1e)\n", 5, 21, "bad number literal '1e'")
        expectError(header + "d = dropout(x, rate=3x)\n", 5, 21, "bad number literal '3x'")
        expectError(header + "d = dropout(x, rate=0x10)\n", 5, 21, "bad number literal '0x10'")
        expectError(header + "d = dropout(x, rate=1.)\n", 5, 21, "bad number literal '1.'")
    }

    func testHugeNumbers() {
        expectError(header + "s = scale(x, factor=1e999)\n", 5, 21, "number '1e999' is out of range")
        expectError(header + "p = maxpool(x, size=99999999999)\n", 5, 21,
                    "attribute 'size': integer 99999999999 is out of range (limit 2147483647)")
        expectError(header + "p = maxpool(x, size=99999999999999999999999)\n", 5, 21,
                    "attribute 'size': integer 99999999999999999999999 is out of range (limit 2147483647)")
        expectError(header + "r = reshape(x, shape=[65536, 65536, 65536])\n", 5, 22,
                    "attribute 'shape': [65536, 65536, 65536] describes more than 2147483648 elements")
    }

    func testOverflowingDimensions() {
        expectError("model m\ninput x: f32[N, 99999999999999999999]\n", 2, 17,
                    "dimension 99999999999999999999 is too large (limit 2147483647)")
        expectError("model m\nparam w: f32[65536, 65536, 65536]\n", 2, 10,
                    "f32[65536, 65536, 65536] has too many elements (limit 2147483648)")
        expectError("model m\ninput x: f32[N, 65536, 65536]\n", 2, 10,
                    "f32[N, 65536, 65536] has too many elements (limit 2147483648 per sample)")
    }

    func testDeepNesting() {
        let deep = header + "y = f(x, a=" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + ")\n"
        expectError(deep, 5, 12 + maxNesting - 1, "brackets nested too deeply (more than \(maxNesting) levels)")
        let parens = header + "y = relu(x, " + String(repeating: "(", count: 10_000) + "\n"
        expectError(parens, 5, 13, "expected a value (a number, a name or a [list]), found '('")
    }

    // MARK: model statement

    func testMissingModel() {
        expectError("input x: f32[N, 1, 8, 8]\n", 1, 1, "missing 'model NAME': the file must start with it")
        expectError("# a comment\n\n  y = relu(x)\n", 3, 3, "missing 'model NAME': the file must start with it")
    }

    func testDuplicateModel() {
        let d = expectError("model a\nmodel b\n", 2, 1, "duplicate 'model' statement")
        XCTAssertEqual(d?.notes.first?.line, 1)
    }

    func testModelNeedsAName() {
        expectError("model\n", 1, 6, "expected a model name after 'model', found end of line")
        expectError("model 3\n", 1, 7, "expected a model name after 'model', found number '3'")
    }

    func testEmptyFile() {
        expectError("", 1, 1, "empty file: a model file must start with 'model NAME'")
        expectError("# nothing here\n\n", 1, 1, "empty file: a model file must start with 'model NAME'")
    }

    // MARK: types

    func testBatchDimensionNotFirst() {
        expectError("model m\ninput x: f32[1, N]\n", 2, 17, "the batch dimension N may only be the first dimension")
    }

    func testBatchDimensionInParam() {
        expectError("model m\nparam w: f32[N, 3]\n", 2, 14,
                    "a parameter must have fixed dimensions; the batch dimension N is only for inputs")
    }

    func testUnknownDtype() {
        expectError("model m\ninput x: f64[N, 3]\n", 2, 10, "unknown element type 'f64' (did you mean 'f32'?); expected f32 or i32")
        expectError("model m\ninput x: float[N, 3]\n", 2, 10, "unknown element type 'float'; expected f32 or i32")
    }

    func testNonPositiveDimensions() {
        expectError("model m\ninput x: f32[N, 0, 8]\n", 2, 17, "a dimension must be positive, got 0")
        expectError("model m\ninput x: f32[N, -3, 8]\n", 2, 17, "a dimension must be positive, got -3")
        expectError("model m\ninput x: f32[N, 1.5]\n", 2, 17, "a dimension must be an integer, got 1.5")
        expectError("model m\ninput x: f32[N, M]\n", 2, 17, "expected a dimension (a positive integer or N), found name 'M'")
    }

    func testTypeSyntax() {
        expectError("model m\ninput x f32[N]\n", 2, 9, "expected ':' and a type after 'input x', found name 'f32'")
        expectError("model m\ninput x: f32\n", 2, 13, "expected '[' after the element type 'f32', found end of line")
        expectError("model m\ninput x: f32[N], init=zeros\n", 2, 18, "unknown attribute 'init': an input takes no attributes")
    }

    // MARK: train block

    func testMissingLoss() {
        expectError(header + "train {\n  optimizer = adam(lr=1e-3)\n}\n", 5, 1,
                    "the train block needs 'loss = NAME' (the scalar to minimise)")
    }

    func testMissingOptimizer() {
        expectError(header + "train {\n  loss = x\n}\n", 5, 1,
                    "the train block needs 'optimizer = adam(lr=...)' or 'optimizer = sgd(lr=...)'")
    }

    func testUnknownTrainKey() {
        expectError(header + "train {\n  loss = l\n  optimiser = adam(lr=1)\n}\n", 7, 3,
                    "unknown train setting 'optimiser' (did you mean 'optimizer'?)")
        expectError(header + "train {\n  colour = 3\n}\n", 6, 3,
                    "unknown train setting 'colour' (valid: loss, optimizer, schedule, batch, epochs, seed, input_scale, augment, label_smoothing, ema, mixup, distill, distill_temperature, compute, finish)")
    }

    /// The teacher's weight is in [0, 1]; a temperature without a weight does nothing, so it is
    /// an error at the temperature.
    func testDistillSettings() {
        let train = header + "train {\n  loss = l\n  optimizer = adam(lr=1e-3)\n"
        expectError(train + "  distill = 1.5\n}\n", 8, 13, "attribute 'distill': must be 0 (off) or the teacher's weight in the targets, in (0, 1], got 1.5")
        expectError(train + "  distill = 0.5\n  distill_temperature = 0\n}\n", 9, 25, "attribute 'distill_temperature': must be in (0, 100], got 0")
        expectError(train + "  distill_temperature = 2\n}\n", 8, 3,
                    "distill_temperature = 2.0 without a teacher's weight: add 'distill = 0.5' (for example) or remove it")
    }

    func testTrainKeySetTwice() {
        expectError(header + "train {\n  batch = 1\n  batch = 2\n}\n", 7, 3, "'batch' is set twice in the train block")
    }

    func testConflictingDecayAndSchedule() {
        let train = header + "s = l2_penalty(x, factor=1)\ntrain {\n  loss = s\n  optimizer = adam(lr=1e-4, decay=1e-6)\n  schedule = cosine\n}\n"
        let d = expectError(train, 8, 35, "decay=1e-06 conflicts with the schedule: Keras' decay is the inverse_time schedule; give one or the other")
        XCTAssertEqual(d?.notes.first.map { "\($0.line):\($0.column)" }, "9:14")
    }

    func testLossMustBeScalar() {
        expectError(header + "train {\n  loss = x\n  optimizer = adam(lr=1e-3)\n}\n", 6, 10,
                    "the loss must be a scalar f32[], but 'x' is f32[N, 1, 8, 8]")
        expectError(header + "train {\n  loss = los\n  optimizer = adam(lr=1e-3)\n}\n", 6, 10, "unknown value 'los' for the loss")
    }

    func testOptimizerErrors() {
        let pre = header + "s = l2_penalty(x, factor=1)\ntrain {\n  loss = s\n"
        expectError(pre + "  optimizer = adamw(lr=1)\n}\n", 8, 15, "unknown optimizer 'adamw' (did you mean 'adam'?) (valid: adam, sgd)")
        expectError(pre + "  optimizer = adam(beta1=0.9)\n}\n", 8, 15, "missing required attribute 'lr' for adam")
        expectError(pre + "  optimizer = sgd(lr=0.1, momentun=0.9)\n}\n", 8, 27, "unknown attribute 'momentun' for sgd (did you mean 'momentum'?)")
        expectError(pre + "  optimizer = adam(lr=-1)\n}\n", 8, 23, "attribute 'lr': must be positive, got -1")
        expectError(pre + "  optimizer = adam(lr=1)\n  schedule = step(every=2)\n}\n", 9, 14, "missing required attribute 'factor' for step")
        expectError(pre + "  optimizer = adam(lr=1)\n  batch = 0\n}\n", 9, 11, "attribute 'batch': must be at least 1, got 0")
        expectError(pre + "  optimizer = adam(lr=1)\n  augment = augment(flip=true)\n}\n", 9, 21, "unknown attribute 'flip' for augment (did you mean 'hflip'?)")
    }

    // MARK: characters and line endings

    func testNonASCII() {
        expectError(header + "y = rélu(x)\n", 5, 6, "unexpected non-ASCII character 'é' (U+00E9); only comments may contain it")
        XCTAssertNotNil(compiles(header + "# commentaire: entrée 48×48 ✓\ny = relu(x)\n"))
    }

    func testBinaryJunk() {
        expectError("model m\n\u{0}\u{1}\u{7f}\n", 2, 1, "unexpected control character U+0000")
    }

    func testInvalidUTF8File() throws {
        let path = NSTemporaryDirectory() + "fergc-invalid-\(getpid()).graph"
        let bytes: [UInt8] = Array("model m\ny = ".utf8) + [0xFF, 0xFE, 0x0A]
        XCTAssert(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try Frontend.compile(path: path)
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual("\(error.line):\(error.column)", "2:5")
            XCTAssertEqual(error.message, "unexpected character U+FFFD (invalid UTF-8?)")
            XCTAssert(error.description.hasPrefix("\(path):2:5: error: "))
        }
    }

    func testTabsCountAsOneColumn() {
        let d = expectError(header + "y =\trelu(\txx)\n", 5, 11, "unknown value 'xx' (did you mean 'x'?)")
        XCTAssertEqual(d?.sourceLine, "y =\trelu(\txx)")
        XCTAssert(d?.description.hasSuffix("y =\trelu(\txx)\n          ^\n") ?? false)
    }

    func testCRLFLineEndings() {
        let crlf = (header + "y = relu(x)\noutput y\n").replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertNotNil(compiles(crlf))
        let bad = (header + "y = relu(xx)\n").replacingOccurrences(of: "\n", with: "\r\n")
        let d = expectError(bad, 5, 10, "unknown value 'xx' (did you mean 'x'?)")
        XCTAssertEqual(d?.sourceLine, "y = relu(xx)")
    }

    func testErrorAtEndOfFileWithoutNewline() {
        expectError("model m\ninput x: f32[N, 1, 8, 8]\ny = relu(", 3, 9, "unterminated '(': no matching ')' before the end of the file")
        expectError("model m\nlet a =", 2, 8, "expected a value (a number, a name or a [list]), found end of line")
    }
}
