// fergc explain: the steps of a .plan with their kernels and arena offsets, the fused kernels,
// and a memory timeline (live arena bytes at each step, from the buffers' offsets, sizes and
// lifetimes), optionally drawn as SVG.

import Foundation
import Passes
import Runtime

enum ExplainCommand {
    static let spec = CommandSpec(
        name: "explain",
        usage: "explain M.plan [--svg OUT.svg]",
        summary: "Show a plan's steps (kernels, buffers, arena offsets), fusions and memory timeline.",
        options: [
            OptionSpec(name: "svg", kind: .value("OUT.svg"), help: "Write the memory timeline (live arena bytes per step) as an SVG chart."),
        ],
        details: """
        Buffers print as name@offset+bytes for arena intermediates, and with their role
        (input, param, state) otherwise. Live bytes at a step are the union of the arena ranges
        of the intermediates live at it (from the step that first writes one to the last that
        reads it); for a plan without arena offsets, the sum of their sizes.
        """)

    static func main(_ args: [String]) throws {
        let a = try parseArguments(args, spec)
        guard a.positional.count == 1 else {
            throw UsageError(message: a.positional.isEmpty ? "missing the plan file (M.plan)" : "expected one plan file, got \(a.positional.count)", command: spec.name)
        }
        let plan: Plan
        do { plan = try readPlan(path: a.positional[0]) } catch { throw CLIError(error.description) }
        let timeline = memoryTimeline(plan)
        Console.out(text(plan, timeline))
        if let svgPath = a.value("svg") {
            do { try timelineSVG(plan, timeline).write(toFile: svgPath, atomically: true, encoding: .utf8) } catch {
                throw CLIError("\(svgPath): cannot write the SVG: \(error.localizedDescription)")
            }
            Console.out("wrote \(svgPath)\n")
        }
    }

    static func bufferText(_ plan: Plan, _ i: Int) -> String {
        let b = plan.buffers[i]
        switch b.role {
        case .intermediate:
            let bytes = b.byteCount(batch: plan.maxBatch)
            return b.offset.map { "\(b.name)@\($0)+\(bytes)" } ?? "\(b.name)(+\(bytes))"
        case .input: return "\(b.name):input"
        case .parameter: return "\(b.name):param"
        case .state: return "\(b.name):state"
        }
    }

    static func text(_ plan: Plan, _ timeline: [MemoryTimelinePoint]) -> String {
        var s = "plan '\(plan.name)': \(plan.steps.count) steps, \(plan.buffers.count) buffers, batch up to \(plan.maxBatch)"
        s += plan.memory.map { ", arena \($0.arenaBytes) bytes\n" } ?? " (no arena offsets: every buffer has its own storage)\n\n"
        if plan.memory != nil { s += "\n" }
        let width = max(plan.steps.map(\.name.count).max() ?? 4, 4)
        func kernelName(_ step: Step) -> String {
            if case .preprocess(let t, _, _, _) = step.kernel { return "preprocess " + t.name }
            return step.kernel.name + (step.algorithm == .winograd ? "+winograd" : "")
        }
        let kernelWidth = max(plan.steps.map { kernelName($0).count }.max() ?? 6, 6)
        s += "step  " + "name".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
            + "kernel".padding(toLength: kernelWidth, withPad: " ", startingAt: 0) + "  live bytes  reads -> writes\n"
        for (k, step) in plan.steps.enumerated() {
            s += String(k).leftPadded(4) + "  " + step.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
            s += kernelName(step).padding(toLength: kernelWidth, withPad: " ", startingAt: 0) + "  "
            s += String(k < timeline.count ? timeline[k].liveBytes : 0).leftPadded(10) + "  "
            s += step.inputs.map { bufferText(plan, $0) }.joined(separator: ", ") + " -> "
            s += step.outputs.isEmpty ? "(updates in place)" : step.outputs.map { bufferText(plan, $0) }.joined(separator: ", ")
            s += "\n"
        }
        s += "outputs: " + plan.outputs.map { bufferText(plan, $0) }.joined(separator: ", ") + "\n"

        let fused = plan.steps.enumerated().filter { $0.element.kernel.name.hasPrefix("fused") }
        s += "\nfusions: "
        if fused.isEmpty {
            s += "none\n"
        } else {
            s += "\(fused.count) of \(plan.steps.count) steps run fused kernels\n"
            for (k, step) in fused { s += "  step \(k) '\(step.name)': \(step.kernel.summary)\n" }
        }
        if let w = winogradText(plan) { s += "\nwinograd: " + w + "\n" }
        if let p = plan.metadata.frozenPrefix { s += "\n" + frozenPrefixText(p) + "\n" }
        s += "\n" + memoryReport(plan) + "\n"
        if let peak = timeline.max(by: { $0.liveBytes < $1.liveBytes }) {
            s += "peak live arena bytes: \(peak.liveBytes) at step \(peak.step) '\(peak.name)'\n"
        }
        return s
    }

    /// An area chart of live arena bytes over the steps, with the arena size as a line.
    static func timelineSVG(_ plan: Plan, _ timeline: [MemoryTimelinePoint]) -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let w = 720.0, h = 360.0, left = 80.0, right = 20.0, top = 40.0, bottom = 50.0
        let plotW = w - left - right, plotH = h - top - bottom
        let arena = plan.memory?.arenaBytes ?? 0
        let maxBytes = Double(max(timeline.map(\.liveBytes).max() ?? 0, arena, 1))
        let n = max(timeline.count, 1)
        let barW = plotW / Double(n)
        func y(_ bytes: Int) -> Double { top + plotH * (1 - Double(bytes) / maxBytes) }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" viewBox="0 0 \(Int(w)) \(Int(h))" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(left))" y="22" font-size="14">\(esc(plan.name)): live arena bytes per step (batch \(plan.maxBatch))</text>

        """
        for p in timeline {
            let x = left + Double(p.step) * barW
            s += String(format: "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#4a7fb5\"><title>step %d %@: %d bytes</title></rect>\n",
                        x, y(p.liveBytes), max(barW - 0.5, 0.5), top + plotH - y(p.liveBytes), p.step, esc(p.name), p.liveBytes)
        }
        if arena > 0 {
            s += String(format: "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/>\n", left, y(arena), left + plotW, y(arena))
            s += String(format: "<text x=\"%.1f\" y=\"%.2f\" fill=\"#c0392b\" text-anchor=\"end\">arena %d bytes</text>\n", left + plotW, y(arena) - 4, arena)
        }
        // Axes, with the y axis labelled at 0, half and full scale.
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left, top + plotH)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top + plotH, left + plotW, top + plotH)
        for f in [0.0, 0.5, 1.0] {
            let bytes = Int(maxBytes * f)
            s += String(format: "<text x=\"%.1f\" y=\"%.2f\" text-anchor=\"end\">%d</text>\n", left - 4, y(bytes) + 4, bytes)
        }
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step (0 … %d)</text>\n", left + plotW / 2, h - 15, max(timeline.count - 1, 0))
        s += "</svg>\n"
        return s
    }
}
