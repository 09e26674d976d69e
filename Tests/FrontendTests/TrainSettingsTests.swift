// `Frontend.withTrainSettings`: the train block changed from outside the model file
// (`fergc train --set KEY=VALUE`), checked as the block itself is, errors located in the setting.

import XCTest
import GraphIR
@testable import Frontend

final class TrainSettingsTests: XCTestCase {
    let model = """
        model m
        input x: f32[N, 1, 48, 48]
        input labels: i32[N]
        let w = 8
        c = conv2d(x, filters=w, kernel=3)
        f = flatten(c)
        p = dense(f, units=7)
        loss = softmax_cross_entropy(p, labels)
        output p, loss
        train {
          loss = loss
          optimizer = sgd(lr=0.01, momentum=0.9, nesterov=true, weight_decay=1e-4)
          schedule = cosine(min_factor=0, warmup_epochs=1)
          augment = augment(hflip=true, rotate=10, erase=0.5)
          batch = 64
          epochs = 30
          seed = 3
        }

        """

    func base() throws -> Graph { try XCTUnwrap(compiles(model)) }

    /// Expects `settings` to be refused with `message` at column `column` of the setting shown.
    func expectRefused(_ settings: [String], column: Int, _ message: String, shows line: String,
                       file: StaticString = #filePath, lineNumber: UInt = #line) throws {
        let g = try base()
        do {
            _ = try Frontend.withTrainSettings(g, settings)
            XCTFail("expected \(settings) to be refused", file: file, line: lineNumber)
        } catch {
            XCTAssertEqual(error.message, message, file: file, line: lineNumber)
            XCTAssertEqual(error.column, column, "column of: \(error.message)", file: file, line: lineNumber)
            XCTAssertEqual(error.sourceLine, line, file: file, line: lineNumber)
            XCTAssertTrue(error.description.hasPrefix("--set:1:\(column): error: "), error.description, file: file, line: lineNumber)
        }
    }

    func testSettingsReplaceAndAddAndLeaveTheRestAlone() throws {
        let g = try base()
        let t0 = try XCTUnwrap(g.training)
        XCTAssertEqual(t0.augmentation.rotate, 10)
        let changed = try Frontend.withTrainSettings(g, ["augment = augment(hflip=true, crop=40)", "label_smoothing=0.1", "ema=0.999"])
        let t = try XCTUnwrap(changed.training)
        // Replaced: the whole augmentation is the one given (no rotation or erasing left over).
        XCTAssertEqual(t.augmentation.crop, 40)
        XCTAssertTrue(t.augmentation.horizontalFlip)
        XCTAssertEqual(t.augmentation.rotate, 0)
        XCTAssertEqual(t.augmentation.erase, 0)
        // Added: keys the block did not set.
        XCTAssertEqual(t.labelSmoothing, 0.1)
        XCTAssertEqual(t.ema, 0.999)
        // Left alone: everything else of the block, and the whole graph outside it.
        XCTAssertEqual(t.optimizer, t0.optimizer)
        XCTAssertEqual(t.schedule, t0.schedule)
        XCTAssertEqual([t.batchSize, t.epochs], [64, 30])
        XCTAssertEqual(t.seed, 3)
        var a = g, b = changed
        a.training = nil
        b.training = nil
        XCTAssertEqual(a.printed(), b.printed())
        // The printed IR (what a checkpoint records and --resume compiles) carries the change.
        let again = try Frontend.compile(source: changed.printed(types: false), file: "ir.graph")
        XCTAssertEqual(again.printed(), changed.printed())
        XCTAssertEqual(again.training?.augmentation.crop, 40)
        // No settings: the graph as it was.
        XCTAssertEqual(try Frontend.withTrainSettings(g, []).printed(), g.printed())
    }

    func testTheOptimizerIsReplacedWhole() throws {
        let changed = try Frontend.withTrainSettings(try base(), ["optimizer=adam(lr=1e-3)", "schedule=constant", "seed=12", "compute=bf16"])
        let t = try XCTUnwrap(changed.training)
        guard case .adam(let lr, _) = t.optimizer else { return XCTFail("\(t.optimizer)") }
        XCTAssertEqual(lr, 1e-3)
        XCTAssertEqual(t.schedule, .constant)
        XCTAssertEqual(t.seed, 12)
        XCTAssertEqual(t.compute, "bf16")
    }

    func testBadSettingsAreLocatedInTheSettingAsGiven() throws {
        try expectRefused(["augmnt=none"], column: 1, "unknown train setting 'augmnt' (did you mean 'augment'?)", shows: "augmnt=none")
        try expectRefused(["epochs"], column: 1, "a train setting is written KEY=VALUE (for example epochs=30), got 'epochs'", shows: "epochs")
        try expectRefused(["=3"], column: 1, "missing the train setting's name before '='", shows: "=3")
        try expectRefused(["epochs= "], column: 8, "missing the value of 'epochs' after '='", shows: "epochs= ")
        // The value's checks are the block's, at the column of the setting as typed.
        try expectRefused(["epochs=0"], column: 8, "attribute 'epochs': must be at least 1, got 0", shows: "epochs=0")
        try expectRefused(["augment =  augment(hflip=true, crop=60)"], column: 37, "attribute 'crop': must be at most 48 (the face's side), got 60",
                          shows: "augment =  augment(hflip=true, crop=60)")
        try expectRefused(["optimizer=sgd(lr=0.01, nesterov=maybe)"], column: 33, "attribute 'nesterov' must be true or false, got maybe",
                          shows: "optimizer=sgd(lr=0.01, nesterov=maybe)")
        try expectRefused(["loss=lss"], column: 6, "unknown value 'lss' for the loss (did you mean 'loss'?)", shows: "loss=lss")
        // One value on one line: nothing that would end the block or hide the rest.
        try expectRefused(["epochs=2 } x = 1"], column: 10, "a train setting's value is one expression on one line; '}' cannot be part of it",
                          shows: "epochs=2 } x = 1")
        try expectRefused(["epochs=2 # 3"], column: 10, "a train setting's value is one expression on one line; '#' cannot be part of it",
                          shows: "epochs=2 # 3")
        try expectRefused(["epochs=2", "epochs=3"], column: 1, "'epochs' is set twice (first: 'epochs=2')", shows: "epochs=3")
        // The file's `let` names are gone from the IR: a setting is written in values.
        try expectRefused(["batch=w"], column: 7, "attribute 'batch' must be an integer, got w", shows: "batch=w")
    }

    /// `finish`: the run's last epochs with their own rate, schedule and augmentation. Parsed,
    /// printed so that the printed IR (what a checkpoint records) compiles back to it, removed
    /// by `finish=none`, and refused with a located error when it would change the input side.
    func testAFinishIsParsedPrintedAndChecked() throws {
        let changed = try Frontend.withTrainSettings(try base(), [
            "finish=finish(epochs=2, lr=0.001, augment=augment(hflip=true, pad=2, pad_mode=reflect))"])
        let t = try XCTUnwrap(changed.training)
        let f = try XCTUnwrap(t.finish)
        XCTAssertEqual(f.epochs, 2)
        XCTAssertEqual(f.learningRate, 0.001)
        XCTAssertEqual(f.schedule, .cosine(minFactor: 0, warmupEpochs: 0), "the default: cosine to 0, no warm-up")
        XCTAssertEqual(f.augmentation?.pad, 2)
        XCTAssertEqual(f.augmentation?.rotate, 0)
        XCTAssertEqual(t.totalEpochs, 32)
        XCTAssertEqual(t.augmentation(epoch: 29).rotate, 10, "the main epochs keep the run's augmentation")
        XCTAssertEqual(t.augmentation(epoch: 30), f.augmentation)
        let again = try Frontend.compile(source: changed.printed(types: false), file: "ir.graph")
        XCTAssertEqual(again.training, t)
        XCTAssertTrue(changed.printed(types: false).contains("  finish = finish(epochs=2, lr=0.001, schedule=cosine(min_factor=0.0, warmup_epochs=0.0), augment=augment("),
                      changed.printed(types: false))

        // Without augment the finish keeps the run's; another schedule is taken as written.
        let own = try XCTUnwrap(Frontend.withTrainSettings(try base(), ["finish=finish(epochs=1, lr=0.002, schedule=constant)"]).training)
        XCTAssertNil(own.finish?.augmentation)
        XCTAssertEqual(own.augmentation(epoch: 30), own.augmentation)
        XCTAssertEqual(own.finish?.schedule, .constant)
        let ownAgain = try Frontend.compile(source: Frontend.withTrainSettings(try base(), ["finish=finish(epochs=1, lr=0.002, schedule=constant)"]).printed(types: false), file: "ir.graph")
        XCTAssertEqual(ownAgain.training, own)

        // finish=none removes one the block has.
        XCTAssertNil(try Frontend.withTrainSettings(changed, ["finish=none"]).training?.finish)

        try expectRefused(["finish=finish(lr=0.001)"], column: 8, "missing required attribute 'epochs' for finish (the epochs after the main ones)",
                          shows: "finish=finish(lr=0.001)")
        try expectRefused(["finish=finish(epochs=2)"], column: 8, "missing required attribute 'lr' for finish (the rate its schedule starts from)",
                          shows: "finish=finish(epochs=2)")
        try expectRefused(["finish=finish(epochs=0, lr=0.1)"], column: 22, "attribute 'epochs': must be at least 1, got 0",
                          shows: "finish=finish(epochs=0, lr=0.1)")
        try expectRefused(["finish=finish(epochs=1, lr=0.1, warmup=1)"], column: 33, "unknown attribute 'warmup' for finish (valid: epochs, lr, schedule, augment)",
                          shows: "finish=finish(epochs=1, lr=0.1, warmup=1)")
        // The run trains on the whole face; a finish on 40x40 crops would need another model input.
        try expectRefused(["finish=finish(epochs=1, lr=0.1, augment=augment(crop=40))"], column: 41,
                          "the finish's augment trains on 40x40 crops but the run's on the whole 48x48 face: the model's input side does not change within a run; give the finish's augment crop=48 or leave crop out",
                          shows: "finish=finish(epochs=1, lr=0.1, augment=augment(crop=40))")
    }

    func testAModelWithoutATrainBlockIsRefused() throws {
        let g = try XCTUnwrap(compiles("model m\ninput x: f32[N, 4]\ny = dense(x, units=2)\noutput y\n"))
        do {
            _ = try Frontend.withTrainSettings(g, ["epochs=3"])
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.message, "the model 'm' has no train { } section to change")
        }
    }
}
