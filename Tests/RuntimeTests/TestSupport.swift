// Helpers shared by the runtime tests: a seeded RNG, an owned buffer to hand kernels raw
// pointers, and a Caffe-style finite-difference gradient checker.
import XCTest
import CKernels
@testable import Runtime

/// splitmix64: a small deterministic generator for test data.
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double = -1, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) * 0x1p-53
    }
    mutating func array(_ count: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Double] {
        (0..<count).map { _ in uniform(lo, hi) }
    }
}

/// Keeps every `Buf` alive until the test ends, so `DBuf(values).c` may be passed straight to
/// a kernel (otherwise ARC may free the temporary before the call reads it).
enum BufArena {
    /// Buffers are made from several threads in the parallel tests: the list has a lock (TSan
    /// found the unlocked append).
    nonisolated(unsafe) private static var live: [AnyObject] = []
    private static let lock = NSLock()
    static func keep(_ b: AnyObject) { lock.lock(); live.append(b); lock.unlock() }
    static func drain() { lock.lock(); live.removeAll(); lock.unlock() }
}

/// The base of the runtime test cases: frees the test's buffers after each test.
class RuntimeTestCase: XCTestCase {
    override func tearDown() {
        BufArena.drain()
        super.tearDown()
    }

    /// Runs `body` once on each unit this CPU computes bf16 products on (AMX, then AVX512_BF16's
    /// dot product, which an AMX Xeon also has: `fk_limit_bf16(1)` makes the kernels take it),
    /// with the unit's name; skips where there is none (bf16 plans run in f32 there).
    func onEachBF16Unit(_ body: (String) throws -> Void) throws {
        defer { fk_limit_bf16(2) }
        var units: [(Int32, String)] = []
        if fk_bf16_level() == 2 { units.append((2, "AMX")) }
        fk_limit_bf16(1)
        if fk_bf16_level() == 1 { units.append((1, "AVX512_BF16")) }
        guard !units.isEmpty else { throw XCTSkip("this CPU has neither AMX nor AVX512_BF16: bf16 runs in f32 here") }
        for (level, name) in units {
            fk_limit_bf16(level)
            try body(name)
        }
    }
}

/// A heap buffer of T that kernels can write through `p`; lives until the test ends.
final class Buf<T> {
    let p: UnsafeMutablePointer<T>
    let count: Int
    init(_ values: [T]) {
        count = values.count
        p = .allocate(capacity: max(count, 1))
        for (i, v) in values.enumerated() { (p + i).initialize(to: v) }
        BufArena.keep(self)
    }
    deinit { p.deinitialize(count: count); p.deallocate() }
    var c: UnsafePointer<T> { UnsafePointer(p) }
    var array: [T] { Array(UnsafeBufferPointer(start: p, count: count)) }
}

extension Buf where T: BLASReal {
    convenience init(zeros count: Int) { self.init([T](repeating: 0, count: count)) }
}

typealias DBuf = Buf<Double>

/// A differentiable function of several tensors, for `checkGradients`.
struct GradCase {
    var name: String
    /// The point at which to check, one array per input.
    var inputs: [[Double]]
    /// y = f(inputs).
    var forward: ([[Double]]) -> [Double]
    /// Given inputs and dy, the analytic gradient of sum(dy * y) for each input (nil: skip it).
    var backward: ([[Double]], [Double]) -> [[Double]?]
    /// Optional piecewise structure (relu signs, max positions): a point whose perturbation by
    /// +-h changes it is within a step of a kink and is skipped.
    var structure: (([[Double]]) -> [Int])? = nil
}

/// Central differences of L = sum(r * f(x)) for random r, compared to the analytic gradient
/// with Caffe's relative tolerance: |a - n| <= tol * max(1, |a|, |n|). Returns the number of
/// points checked.
@discardableResult
func checkGradients(_ c: GradCase, seed: UInt64 = 7, h: Double = 1e-5, tol: Double = 1e-6,
                    file: StaticString = #filePath, line: UInt = #line) -> Int {
    var rng = TestRNG(seed: seed)
    let y0 = c.forward(c.inputs)
    let r = rng.array(y0.count)
    func objective(_ xs: [[Double]]) -> Double { zip(c.forward(xs), r).reduce(0) { $0 + $1.0 * $1.1 } }
    let analytic = c.backward(c.inputs, r)
    let base = c.structure?(c.inputs)
    var checked = 0, skipped = 0, worst = 0.0
    for (k, input) in c.inputs.enumerated() {
        guard let grad = analytic[k] else { continue }
        XCTAssertEqual(grad.count, input.count, "\(c.name): gradient \(k) size", file: file, line: line)
        for i in input.indices {
            var plus = c.inputs, minus = c.inputs
            plus[k][i] += h
            minus[k][i] -= h
            if let structure = c.structure, structure(plus) != base || structure(minus) != base {
                skipped += 1
                continue
            }
            let numeric = (objective(plus) - objective(minus)) / (2 * h)
            let scale = max(1, abs(numeric), abs(grad[i]))
            let error = abs(numeric - grad[i]) / scale
            worst = max(worst, error)
            if error > tol {
                XCTFail("\(c.name): d/dinput\(k)[\(i)] analytic \(grad[i]) numeric \(numeric)", file: file, line: line)
            }
            checked += 1
        }
    }
    XCTAssertGreaterThan(checked, 0, "\(c.name): nothing checked", file: file, line: line)
    XCTAssertLessThan(skipped, max(checked / 4, 2), "\(c.name): too many kink points skipped", file: file, line: line)
    return checked
}

/// Asserts two arrays agree elementwise within `tol` relative to max(1, |a|, |b|).
func assertClose<T: BLASReal>(_ a: [T], _ b: [T], tol: Double, _ message: String = "",
                              file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(message): sizes", file: file, line: line)
    var worst = 0.0, at = -1
    for i in 0..<min(a.count, b.count) {
        let x = Double(a[i]), y = Double(b[i])
        let e = abs(x - y) / max(1, abs(x), abs(y))
        if e > worst || e.isNaN { worst = e.isNaN ? .infinity : e; at = i }
    }
    if worst > tol {
        XCTFail("\(message): max relative difference \(worst) at \(at): \(a[at]) vs \(b[at])", file: file, line: line)
    }
}

/// max |a - b| / max |b| (infinity where a difference is NaN): the error of a fast kernel's
/// result against a reference in Double, relative to the reference's magnitude.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    XCTAssertEqual(a.count, b.count)
    var worst = 0.0, scale = 0.0
    for i in 0..<min(a.count, b.count) {
        let e = abs(Double(a[i]) - b[i])
        worst = e.isNaN ? .infinity : max(worst, e)
        scale = max(scale, abs(b[i]))
    }
    return worst / max(scale, 1e-30)
}
