import XCTest
import GraphIR
@testable import Frontend

/// The canonical printer: exact text for graphs built by hand, and parse(print(g)) == g.
final class PrinterTests: XCTestCase {
    private func handBuilt() throws -> Graph {
        var g = Graph(name: "hand")
        let x = try g.addValue(Value(name: "x", type: .batched([1, 4, 4]), kind: .input))
        let labels = try g.addValue(Value(name: "labels", type: TensorType(.i32, [.batch]), kind: .input))
        let w = try g.addValue(Value(name: "c1.weight", type: .fixed([2, 1, 3, 3]), kind: .parameter(
            ParameterInfo(initializer: .heNormal, trainable: false, l2: 1e-6, maxNorm: MaxNorm(4)))))
        let b = try g.addValue(Value(name: "c1.bias", type: .fixed([2]), kind: .parameter(ParameterInfo(initializer: .constant(0.25)))))
        let s = try g.addValue(Value(name: "it", type: .scalar, kind: .state(.ones)))
        let c = try g.addNode(.conv2d(Conv2DAttrs(stride: 2, padding: .valid)), inputs: [x, w, b], outputNames: ["c1"])
        let f = try g.addNode(.flatten, inputs: c, outputNames: ["f"])
        let d = try g.addNode(.dropoutTrain(rate: 0.4), inputs: f, outputNames: ["d", "d.mask"])
        let l = try g.addNode(.softmaxCrossEntropy, inputs: [d[0], labels], outputNames: ["loss"])
        try g.addNode(.increment, inputs: [s], outputNames: [], name: "increment.it")
        g.outputs = l + [d[0]]
        g.training = TrainingConfig(loss: "loss", optimizer: .adam(lr: 1e-4, AdamAttrs()), schedule: .inverseTime(decay: 1e-6),
                                    batchSize: 64, epochs: 5, seed: 3, inputScale: 1.0 / 255,
                                    augmentation: Augmentation(horizontalFlip: true, shift: 0.1))
        return g
    }

    func testPrintedText() throws {
        XCTAssertEqual(try handBuilt().printed(), """
            model hand
            input x: f32[N, 1, 4, 4]
            input labels: i32[N]
            param c1.weight: f32[2, 1, 3, 3], init=he_normal, trainable=false, l2=1e-06, max_norm=4.0, max_norm_axis=keras
            param c1.bias: f32[2], init=constant(0.25)
            state it: f32[], init=ones
            c1 = conv2d(x, c1.weight, c1.bias, stride=2, padding=valid)  # f32[N, 2, 1, 1]
            f = flatten(c1)  # f32[N, 2]
            d, d.mask = dropout_train(f, rate=0.4)  # f32[N, 2], f32[N, 2]
            loss = softmax_cross_entropy(d, labels)  # f32[]
            increment(it)
            output loss, d
            train {
              loss = loss
              optimizer = adam(lr=0.0001, beta1=0.9, beta2=0.999, epsilon=1e-07)
              schedule = inverse_time(decay=1e-06)
              batch = 64
              epochs = 5
              seed = 3
              input_scale = 0.00392156862745098
              augment = augment(hflip=true, shift=0.1)
            }

            """)
    }

    func testHandBuiltGraphRoundTrips() throws {
        let g = try handBuilt()
        let parsed = try Frontend.compile(source: g.printed(), file: "hand.graph")
        XCTAssertEqual(parsed.printed(), g.printed())
        XCTAssertEqual(parsed.values, g.values)
        XCTAssertEqual(parsed.nodes, g.nodes)
        XCTAssertEqual(parsed.outputs, g.outputs)
        XCTAssertEqual(parsed.training, g.training)
    }

    func testUntypedPrintingRoundTrips() throws {
        let g = try handBuilt()
        XCTAssertFalse(g.printed(types: false).contains("#"))
        XCTAssertEqual(try Frontend.compile(source: g.printed(types: false), file: "u").printed(), g.printed())
    }

    func testSGDAndSchedulesRoundTrip() throws {
        var g = Graph(name: "s")
        let x = try g.addValue(Value(name: "x", type: .batched([3]), kind: .input))
        try g.addNode(.l2Penalty(factor: 0.5), inputs: [x], outputNames: ["l"])
        for schedule in [LRSchedule.constant, .cosine(minFactor: 0.01, warmupEpochs: 1.5), .step(every: 7, factor: 0.3)] {
            g.training = TrainingConfig(loss: "l", optimizer: .sgd(lr: 0.1, SGDAttrs(momentum: 0.9, nesterov: true)), schedule: schedule)
            let parsed = try Frontend.compile(source: g.printed(), file: "s.graph")
            XCTAssertEqual(parsed.training, g.training)
            XCTAssertEqual(parsed.printed(), g.printed())
        }
    }

    /// Every kind of augmentation prints as text that compiles back to it, among them rotation
    /// or erasing without a crop (crop 0 was once printed as `crop=0`, which the language
    /// refuses: such a run's checkpoint could not be resumed from its recorded model).
    func testAugmentationsRoundTrip() throws {
        var g = Graph(name: "a")
        let x = try g.addValue(Value(name: "x", type: .batched([3]), kind: .input))
        try g.addNode(.l2Penalty(factor: 0.5), inputs: [x], outputNames: ["l"])
        var rotateOnly = Augmentation(); rotateOnly.rotate = 10
        var eraseFlip = Augmentation(); eraseFlip.horizontalFlip = true; eraseFlip.erase = 0.5
        var cropPad = Augmentation(); cropPad.crop = 40; cropPad.pad = 2; cropPad.padMode = .reflect; cropPad.scale = 0.1
        var shift = Augmentation(); shift.horizontalFlip = true; shift.shift = 0.1
        for a in [Augmentation.none, rotateOnly, eraseFlip, cropPad, shift] {
            g.training = TrainingConfig(loss: "l", optimizer: .adam(lr: 1e-3, AdamAttrs()), schedule: .constant, augmentation: a)
            let parsed = try Frontend.compile(source: g.printed(), file: "a.graph")
            XCTAssertEqual(parsed.training?.augmentation, a, g.printed())
            XCTAssertEqual(parsed.printed(), g.printed())
        }
    }

    func testFormatDouble() {
        XCTAssertEqual(formatDouble(0.001), "0.001")
        XCTAssertEqual(formatDouble(1e-6), "1e-06")
        XCTAssertEqual(formatDouble(4), "4.0")
    }
}
