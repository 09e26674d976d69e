// The frontend's entry points: text (or a file) to a verified graph, or a located diagnostic.
//
//   let graph = try Frontend.compile(path: "Models/vgg_tuned.graph")
//
// It never traps on any input: numbers are bounded (`maxInteger`, `maxElements`) before any
// size is computed, bracket nesting is capped (`maxNesting`), and the result has passed
// `Graph.verify()`.

#if canImport(GraphIR)
import GraphIR
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Frontend {
    /// Parse + lower + verify. `file` names the text in diagnostics only: an `import` is an
    /// error here (text that came from no file on disk reads none: a checkpoint's model, a
    /// fuzzer's input).
    public static func compile(source: String, file: String) throws(Diagnostic) -> Graph {
        try compile(source: source, file: file, allowImports: false)
    }

    /// Parse + lower + verify; with `allowImports`, the files the text's `import`s name are read
    /// from the folder of `file` (the path the text was read from).
    public static func compile(source: String, file: String, allowImports: Bool) throws(Diagnostic) -> Graph {
        let scalars = Array(source.unicodeScalars)
        let text = SourceFile(name: file, scalars: scalars)
        let (tokens, lexError) = Lexer.tokenize(scalars, source: text)
        var parser = Parser(tokens: tokens, lexError: lexError, source: text)
        var lowering = Lowering(source: text)
        if allowImports { lowering.allowImports(from: file) }
        while let statement = try parser.nextTopLevelStatement() {
            try lowering.lower(statement)
        }
        return try lowering.finish()
    }

    /// Reads the file and compiles it, its imports read from its folder; an unreadable file is
    /// a diagnostic at 1:1.
    public static func compile(path: String) throws(Diagnostic) -> Graph {
        switch readFile(path) {
        case .success(let bytes):
            return try compile(source: String(decoding: bytes, as: UTF8.self), file: path, allowImports: true)
        case .failure(let reason):
            throw Diagnostic(file: path, line: 1, column: 1, message: "cannot read '\(path)': \(reason.message)", sourceLine: "")
        }
    }

    struct ReadError: Error { var message: String }

    /// The file's bytes, or why they could not be read.
    static func readFile(_ path: String) -> Result<[UInt8], ReadError> {
        // Opened without blocking (a FIFO is refused, not waited on), then checked to be a
        // regular file before a byte is read.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(ReadError(message: errnoMessage())) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { let m = errnoMessage(); close(fd); return .failure(ReadError(message: m)) }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: close(fd); return .failure(ReadError(message: "it is a directory"))
        case S_IFIFO: close(fd); return .failure(ReadError(message: "it is a FIFO (named pipe), not a regular file"))
        default: close(fd); return .failure(ReadError(message: "it is not a regular file"))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard let f = fdopen(fd, "rb") else { let m = errnoMessage(); close(fd); return .failure(ReadError(message: m)) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { bytes.append(contentsOf: buffer[0..<n]) }
            if n < buffer.count {
                if ferror(f) != 0 { return .failure(ReadError(message: errnoMessage())) }
                break
            }
            if bytes.count > 64 << 20 { return .failure(ReadError(message: "it is larger than 64 MB")) }
        }
        return .success(bytes)
    }

    /// Why the last call that set errno failed, in words.
    static func errnoMessage() -> String {
        switch errno {
        case ENOENT: return "no such file"
        case EACCES: return "permission denied"
        default: return String(cString: strerror(errno))
        }
    }
}
