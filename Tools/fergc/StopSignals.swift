// SIGINT (Ctrl-C) and SIGTERM during `fergc train`: the first one asks the run to stop after
// the step it is in, with a checkpoint (so nothing since the last periodic checkpoint is lost
// and `--resume` continues bitwise); a second one ends the process at once, as the signal
// would have. SIGKILL cannot be caught: against it, `--checkpoint-every N` bounds the loss.

import Dispatch
import Foundation

final class StopSignals: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [DispatchSourceSignal] = []
    private let notice: String

    /// Starts watching `signals` (their default action is suspended until `stop()`); `notice`
    /// says what the first one does.
    init(_ signals: [Int32] = [SIGINT, SIGTERM], notice: String = "stopping after this step, with a checkpoint") {
        self.notice = notice
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.receive(number) }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal received, if any.
    var number: Int32? { lock.lock(); defer { lock.unlock() }; return received }

    /// Its name ("SIGINT", "SIGTERM"), for `TrainOptions.stopRequested`.
    var reason: String? { number.map(StopSignals.name) }

    /// The default actions back.
    func stop() {
        for s in sources { s.cancel() }
        for s in sources { signal(Int32(s.handle), SIG_DFL) }
        sources = []
    }

    static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(number)"
        }
    }

    private func receive(_ number: Int32) {
        lock.lock()
        let first = received == nil
        if first { received = number }
        lock.unlock()
        if first {
            Console.err("\n\(StopSignals.name(number)): \(notice) (send it again to stop at once)\n")
        } else {
            Console.err("\n\(StopSignals.name(number)) again: stopping now, without a checkpoint\n")
            _exit(128 + number)
        }
    }
}
