import XCTest
import GraphIR
@testable import Frontend

/// The explicit form, as `Graph.printed()` writes it: every op of the IR, round-tripped.
final class ExplicitFormTests: XCTestCase {
    /// A hand-written graph using every op (forward, backward, update) in its explicit form.
    static let allOps = """
        model all_ops
        input x: f32[N, 2, 6, 6]
        input labels: i32[N]
        input lr: f32[]
        param w: f32[3, 2, 3, 3], init=he_normal
        param b: f32[3]
        param g: f32[3], init=ones
        param be: f32[3], init=zeros, trainable=false
        state rm: f32[3]
        state rv: f32[3], init=ones
        param dw: f32[4, 27], init=glorot_normal, l2=0.01, max_norm=2.0, max_norm_axis=per_filter
        param db: f32[4], init=constant(0.1)
        param hw: f32[4, 27], init=he_uniform
        state m: f32[4, 27]
        state v: f32[4, 27], init=constant(-1.5)
        state vel: f32[4, 27]
        state it: f32[]
        c = conv2d(x, w, b, stride=1, padding=same)  # f32[N, 3, 6, 6]
        c2 = conv2d(x, w, stride=2, padding=valid)
        r = relu(c)
        lk = leaky_relu(c, alpha=0.2)
        pe = equalize_local(c, radius=2)
        ph = equalize_hist(c)
        pc = clahe(c, clip=0.5)
        pn = normalize_minmax(c)
        ps = sobel(c)
        psc = scharr(c)
        pp = prewitt(c)
        pr = roberts(c)
        pt = threshold(c, method=yen)
        pz = standardize(c)
        pu = truncate(c)
        bn = batchnorm(r, g, be, rm, rv, epsilon=0.001, momentum=0.99)
        bt, bm, bv = batchnorm_train(r, g, be, epsilon=0.001, momentum=0.99)
        d = dropout(bn, rate=0.5)
        dt, mask = dropout_train(bn, rate=0.5)
        mp = maxpool(d, size=2, stride=2, padding=valid)
        ap = avgpool(d, size=2, stride=2, padding=same)
        f = flatten(mp)
        h = dense(f, dw, db)
        h2 = dense(f, hw)
        sm = softmax(h)
        loss = softmax_cross_entropy(h, labels)
        s = add(mp, ap, mp)
        cat = concat(mp, ap, axis=1)
        gi = conv2d_grad_input(c, w, stride=1, padding=same, shape=[2, 6, 6])
        gw = conv2d_grad_weight(c, x, stride=1, padding=same, shape=[3, 2, 3, 3])
        bg = bias_grad(c)
        dgi = dense_grad_input(h, dw)
        dgw = dense_grad_weight(h, f)
        rg = relu_grad(c, r)
        lg = leaky_relu_grad(c, c, alpha=0.2)
        btg, dg, dbeta = batchnorm_train_grad(r, r, g, bm, bv, epsilon=0.001)
        bng = batchnorm_grad(r, g, rv, epsilon=0.001)
        mu = mul(mp, ap)
        mpg = maxpool_grad(mp, d, size=2, stride=2, padding=valid)
        apg = avgpool_grad(ap, d, size=2, stride=2, padding=same)
        rs = reshape(f, shape=[3, 9])
        one = constant(value=1.0)
        sceg = softmax_cross_entropy_grad(one, h, labels)
        smg = softmax_grad(sm, sm)
        sl = slice(cat, axis=1, start=1, length=2)
        sc = scale(h, factor=0.5)
        l2 = l2_penalty(dw, factor=1e-06)
        l2g = l2_penalty_grad(one, dw, factor=1e-06)
        fc = fused_conv2d(x, w, b, stride=1, padding=same, bias=true, relu=true, batchnorm=none, epsilon=0.001)
        fd = fused_dense(f, dw, db, bias=true, relu=false, batchnorm=none, epsilon=0.001)
        ft, ft.bn_input, ft.mean, ft.var = fused_conv2d_train(x, w, b, g, be, stride=1, padding=same, bias=true, relu=true, batchnorm=after_relu, epsilon=0.001)
        fdt = fused_dense_train(f, hw, bias=false, relu=false, batchnorm=none, epsilon=0.001)
        fcg.dx, fcg.dw, fcg.db = fused_conv2d_train_grad(c, x, w, c, stride=1, padding=same, bias=true, relu=true, batchnorm=none, epsilon=0.001, input_grad=true, weight_grad=true)
        fdg.dw = fused_dense_train_grad(h2, f, hw, bias=false, relu=false, batchnorm=none, epsilon=0.001, input_grad=false, weight_grad=true)
        sgd_update(dw, dgw, vel, lr, momentum=0.9, nesterov=true)
        adam_update(dw, dgw, m, v, lr, it, beta1=0.9, beta2=0.999, epsilon=1e-07)
        max_norm_project(dw, max_value=2.0, axis=per_filter)
        batchnorm_stats_update(rm, rv, bm, bv, r, momentum=0.99)
        increment(it)
        output loss, sm
        output h
        train {
          loss = loss
          optimizer = sgd(lr=0.01, momentum=0.9, nesterov=true)
          schedule = step(every=10, factor=0.5)
          batch = 32
          epochs = 3
          seed = 18446744073709551615
          input_scale = 0.00392156862745098
          augment = augment(hflip=true, shift=0.1)
        }

        """

    func testEveryOpParses() throws {
        let g = try XCTUnwrap(compiles(Self.allOps))
        XCTAssertEqual(Set(g.nodes.map(\.op.name)), Set(Op.allNames))
        try g.verify()
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["loss", "sm", "h"])
        XCTAssertEqual(g.nodes.first { $0.op.isUpdate }?.name, "sgd_update.dw")
        let t = try XCTUnwrap(g.training)
        XCTAssertEqual(t.optimizer, .sgd(lr: 0.01, SGDAttrs(momentum: 0.9, nesterov: true)))
        XCTAssertEqual(t.schedule, .step(every: 10, factor: 0.5))
        XCTAssertEqual(t.seed, UInt64.max)
        XCTAssertEqual(t.augmentation, Augmentation(horizontalFlip: true, shift: 0.1))
        guard let v = g.id(named: "v"), case .state(let i) = g[v].kind else { return XCTFail("v") }
        XCTAssertEqual(i, .constant(-1.5))
        guard let be = g.id(named: "be"), case .parameter(let p) = g[be].kind else { return XCTFail("be") }
        XCTAssertFalse(p.trainable)
    }

    func testExplicitGraphRoundTrips() throws {
        let g = try XCTUnwrap(compiles(Self.allOps))
        let text = g.printed()
        let again = try Frontend.compile(source: text, file: "printed")
        XCTAssertEqual(again.printed(), text)
        XCTAssertEqual(again.nodes, g.nodes)
        XCTAssertEqual(again.outputs, g.outputs)
        XCTAssertEqual(again.training, g.training)
        XCTAssertEqual(again.values, g.values)
    }

    func testPrintedFloatsParseBack() throws {
        let src = """
            model floats
            input x: f32[N, 4]
            a = scale(x, factor=1e-06)
            b = scale(a, factor=4.0)
            c = scale(b, factor=1e+16)
            d = scale(c, factor=-0.0)
            e = scale(d, factor=5e-324)
            f = scale(e, factor=1.7976931348623157e+308)
            g = scale(f, factor=3)
            output g

            """
        let g = try XCTUnwrap(compiles(src))
        let factors = g.nodes.compactMap { n -> Double? in if case .scale(let f) = n.op { return f } else { return nil } }
        XCTAssertEqual(factors, [1e-6, 4, 1e16, -0.0, 5e-324, .greatestFiniteMagnitude, 3])
        XCTAssertEqual(try Frontend.compile(source: g.printed(), file: "p").printed(), g.printed())
    }

    func testDottedAndNumberedNames() throws {
        let src = """
            model names
            input x: f32[N, 4]
            x.1 = relu(x)
            grad.fc6.bias = relu(x.1)
            a_b.c_d.2 = add(x.1, grad.fc6.bias)
            output a_b.c_d.2

            """
        let g = try XCTUnwrap(compiles(src))
        XCTAssertEqual(g.values.map(\.name), ["x", "x.1", "grad.fc6.bias", "a_b.c_d.2"])
    }

    func testGraphWithoutOutputsOrTraining() throws {
        let g = try XCTUnwrap(compiles("model bare\ninput x: f32[N, 3]\n"))
        XCTAssertEqual(g.name, "bare")
        XCTAssertNil(g.training)
        XCTAssertEqual(g.printed(), "model bare\ninput x: f32[N, 3]\n")
    }
}
