// Imports: `import "blocks/vgg.graph"` defines the blocks of another file at that point, so that
// model files can share their stages:
//
//   model vgg_k_gap
//   import "blocks/vgg.graph"        # a file of `block` definitions (and imports)
//   s1 = vgg_stage(x, filters=64)
//
// The path is taken from the folder of the file that imports it (or as written when it starts
// with '/'). An imported file holds only blocks and imports; its blocks are defined as if written
// where the import is, so a name defined twice across files is an error that points at both.
// A file imported a second time (directly or through another) is skipped: its blocks are already
// defined; a file that imports itself, through any chain, is an error that shows the chain.
// Errors inside an imported file are reported where they are, with a note at each import that
// led there. Only a model compiled from a file may import (`Frontend.compile(path:)`): text from
// elsewhere (a checkpoint's model, the printed form, a fuzzer's input) reads no files.
//
// Bounded: imports nested at most `maxNesting` deep, at most `maxImportedFiles` files and 64 MB
// of imported text in one compile; every file is read as `Frontend.readFile` reads the model
// (regular files only, no FIFO waited on).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many files one compile may import, all levels together.
let maxImportedFiles = 256
/// How many bytes of imported text one compile may read, all files together.
let maxImportedBytes = 64 << 20

extension Lowering {
    /// Allows imports, taken from the folder of `file`, the model's own file (which counts as
    /// imported: importing it again, through any chain, is a cycle).
    mutating func allowImports(from file: String) {
        importsAllowed = true
        if let canonical = canonicalPath(file) {
            importStack = [canonical]
            imported = [canonical]
        }
    }

    /// `import "path"`: reads the file, checks it holds only blocks and imports, defines them.
    mutating func importFile(keyword: Loc, path: String, pathLoc: Loc) throws(Diagnostic) {
        guard importsAllowed else {
            throw source.error(keyword, "'import' needs a model compiled from a file: the imported file is looked for in that file's folder")
        }
        guard !path.isEmpty else { throw source.error(pathLoc, "empty file name after 'import'") }
        let from = source.files[min(keyword.file, source.files.count - 1)].name
        let resolved = path.hasPrefix("/") ? path : folder(of: from) + path
        guard let canonical = canonicalPath(resolved) else {
            throw source.error(pathLoc, "cannot import '\(path)': \(Frontend.errnoMessage()) (looked for '\(resolved)')")
        }
        if let at = importStack.firstIndex(of: canonical) {
            let chain = (importStack[at...].map { displayName($0) } + [displayName(canonical)]).joined(separator: " -> ")
            throw source.error(pathLoc, "'\(path)' imports itself: \(chain)")
        }
        if imported.contains(canonical) { return }  // its blocks are defined already
        guard importStack.count <= maxNesting else {
            throw source.error(keyword, "imports nested more than \(maxNesting) levels deep")
        }
        guard source.files.count <= maxImportedFiles else {
            throw source.error(keyword, "more than \(maxImportedFiles) files imported")
        }
        let bytes: [UInt8]
        switch Frontend.readFile(canonical) {
        case .success(let b): bytes = b
        case .failure(let reason):
            throw source.error(pathLoc, "cannot import '\(path)': \(reason.message) (looked for '\(resolved)')")
        }
        importedBytes += bytes.count
        guard importedBytes <= maxImportedBytes else {
            throw source.error(keyword, "the imported files are larger than \(maxImportedBytes >> 20) MB together")
        }

        let index = source.files.count
        let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        let text = SourceFile(name: resolved, scalars: scalars)
        source.files.append(text)
        imported.insert(canonical)
        importStack.append(canonical)
        defer { importStack.removeLast() }
        let (tokens, lexError) = Lexer.tokenize(scalars, source: text, file: index)
        var parser = Parser(tokens: tokens, lexError: lexError, source: text)
        do throws(Diagnostic) {
            while let statement = try parser.nextTopLevelStatement() {
                switch statement {
                case .block(let b):
                    try defineBlock(b)
                case .importFile(let k, let p, let pl):
                    try importFile(keyword: k, path: p, pathLoc: pl)
                default:
                    throw source.error(statement.loc, "an imported file holds only blocks and imports; \(statementKind(statement)) belongs in the model's file")
                }
            }
        } catch {
            var e = error
            e.notes.append(source.note(keyword, "in the file imported here"))
            throw e
        }
    }

    /// `dir/` of `dir/file.graph`, "" for a name without a folder.
    private func folder(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "" }
        return String(file[...slash])
    }

    /// A canonical path's last two components, for the import chain (`blocks/vgg.graph`).
    private func displayName(_ canonical: String) -> String {
        let parts = canonical.split(separator: "/")
        return parts.suffix(2).joined(separator: "/")
    }

    private func statementKind(_ s: Statement) -> String {
        switch s {
        case .model: return "'model'"
        case .letBinding: return "'let'"
        case .declaration(let kind, _, _, _, _): return "'\(kind.rawValue)'"
        case .node: return "a node"
        case .output: return "'output'"
        case .train: return "'train'"
        case .returnValues: return "'return' (outside a block)"
        case .block, .importFile: return "this"
        }
    }
}

/// The path with every link and `..` resolved, or nil (errno says why).
private func canonicalPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}
