// A small pass manager: a pass is a value with a kebab-case name and a function from graph to
// graph. The manager runs a pipeline, verifies after each pass when asked (tests always do),
// prints the IR after the passes named in `printAfter`, and times each pass.

import GraphIR

#if canImport(Glibc)
import Glibc
#endif

public struct Pass: Sendable {
    public var name: String
    public var run: @Sendable (Graph) throws -> Graph
    public init(_ name: String, _ run: @escaping @Sendable (Graph) throws -> Graph) {
        self.name = name
        self.run = run
    }
}

public struct PassError: Error, CustomStringConvertible {
    public var pass: String
    public var message: String
    public init(pass: String, message: String) {
        self.pass = pass
        self.message = message
    }
    public var description: String { "pass '\(pass)': \(message)" }
}

public struct PassTiming: Sendable {
    public var name: String
    public var seconds: Double
}

public struct PassManager {
    public var passes: [Pass]
    public var verifyEach: Bool
    /// Names of passes after which to print the IR; "all" prints after every pass.
    public var printAfter: Set<String> = []
    public var disabled: Set<String> = []
    /// Where printed IR goes (stderr by default, so that stdout stays machine-readable).
    public var printer: (String) -> Void = { FileHandleStderr.write($0) }
    public private(set) var timings: [PassTiming] = []

    public init(_ passes: [Pass], verifyEach: Bool = true) {
        self.passes = passes
        self.verifyEach = verifyEach
    }

    public var names: [String] { passes.map(\.name) }

    public mutating func run(_ graph: Graph) throws -> Graph {
        var g = graph
        timings = []
        for pass in passes where !disabled.contains(pass.name) {
            let start = monotonicSeconds()
            do {
                g = try pass.run(g)
            } catch let e as PassError {
                throw e
            } catch {
                throw PassError(pass: pass.name, message: "\(error)")
            }
            timings.append(PassTiming(name: pass.name, seconds: monotonicSeconds() - start))
            if verifyEach {
                do { try g.verify() } catch {
                    throw PassError(pass: pass.name, message: "the graph it produced does not verify: \(error)")
                }
            }
            if printAfter.contains(pass.name) || printAfter.contains("all") {
                printer("// ----- IR after \(pass.name) -----\n" + g.printed())
            }
        }
        return g
    }
}

public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { p in _ = Glibc.write(2, p.baseAddress, p.count) }
    }
}
