// A small XML reader for OpenCV's cascade files (FileStorage's XML): elements, text, comments,
// the <?xml ...?> declaration, attributes (kept but unused) and the five predefined entities.
// No DTDs, no namespaces, no CDATA. Bounded: nesting depth and element count are capped, so a
// hostile file gives an error, not a deep recursion or an absurd allocation.

public struct XMLError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    /// 1-based line of the problem (0 when not tied to a place).
    public var line: Int
    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// An element: its name, its text (the concatenation of its direct text runs, entities
/// decoded) and its child elements in order.
public final class XMLElement: @unchecked Sendable {
    public let name: String
    public internal(set) var text: String = ""
    public internal(set) var children: [XMLElement] = []
    public let line: Int

    init(name: String, line: Int) { self.name = name; self.line = line }

    /// The first child named `name`.
    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
}

public enum XML {
    public static let maxDepth = 64
    public static let maxElements = 2_000_000

    /// Parses a document and returns its root element.
    public static func parse(_ bytes: [UInt8]) throws(XMLError) -> XMLElement {
        var p = 0, line = 1
        let n = bytes.count
        var stack: [XMLElement] = []
        var root: XMLElement?
        var elements = 0
        func fail(_ m: String) -> XMLError { XMLError(message: m, line: line) }
        @inline(__always) func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 10 || b == 13 }
        func isNameByte(_ b: UInt8) -> Bool {
            (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 95 || b == 45 || b == 46 || b == 58 || b >= 0x80
        }
        func startsWith(_ s: String) -> Bool {
            let u = Array(s.utf8)
            guard p + u.count <= n else { return false }
            for i in 0..<u.count where bytes[p + i] != u[i] { return false }
            return true
        }
        /// Moves p past `end`, counting lines; fails at the end of input.
        func skip(past end: String, what: String) throws(XMLError) {
            let u = Array(end.utf8)
            while p + u.count <= n {
                var match = true
                for i in 0..<u.count where bytes[p + i] != u[i] { match = false; break }
                if match { p += u.count; return }
                if bytes[p] == 10 { line += 1 }
                p += 1
            }
            throw fail("unterminated \(what)")
        }
        func name() throws(XMLError) -> String {
            let s = p
            while p < n, isNameByte(bytes[p]) { p += 1 }
            guard p > s else { throw fail("expected a name after '<'") }
            return String(decoding: bytes[s..<p], as: UTF8.self)
        }
        func decodeText(_ s: Int, _ e: Int) throws(XMLError) -> String {
            var out: [UInt8] = []
            out.reserveCapacity(e - s)
            var i = s
            while i < e {
                let b = bytes[i]
                if b == 38 {  // &
                    var j = i + 1
                    while j < e, j - i < 12, bytes[j] != 59 { j += 1 }
                    guard j < e, bytes[j] == 59 else { throw fail("bad entity reference") }
                    switch String(decoding: bytes[(i + 1)..<j], as: UTF8.self) {
                    case "lt": out.append(60)
                    case "gt": out.append(62)
                    case "amp": out.append(38)
                    case "quot": out.append(34)
                    case "apos": out.append(39)
                    case let other: throw fail("unknown entity '&\(other);'")
                    }
                    i = j + 1
                } else {
                    out.append(b)
                    i += 1
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        while p < n {
            if bytes[p] != 60 {  // text
                let s = p
                while p < n, bytes[p] != 60 {
                    if bytes[p] == 10 { line += 1 }
                    p += 1
                }
                if let top = stack.last {
                    top.text += try decodeText(s, p)
                } else if bytes[s..<p].contains(where: { !isSpace($0) }) {
                    throw fail("text outside the root element")
                }
                continue
            }
            if startsWith("<!--") { p += 4; try skip(past: "-->", what: "comment"); continue }
            if startsWith("<?") { p += 2; try skip(past: "?>", what: "processing instruction"); continue }
            if startsWith("<!") { throw fail("DTDs and CDATA sections are not supported") }
            if startsWith("</") {
                p += 2
                let nm = try name()
                while p < n, isSpace(bytes[p]) { if bytes[p] == 10 { line += 1 }; p += 1 }
                guard p < n, bytes[p] == 62 else { throw fail("expected '>' to close </\(nm)") }
                p += 1
                guard let top = stack.popLast() else { throw fail("closing tag </\(nm)> without an open element") }
                guard top.name == nm else { throw fail("closing tag </\(nm)> does not match <\(top.name)> (line \(top.line))") }
                continue
            }
            p += 1
            let nm = try name()
            let element = XMLElement(name: nm, line: line)
            elements += 1
            guard elements <= maxElements else { throw fail("more than \(maxElements) elements") }
            // Attributes: name="value" or name='value', skipped.
            var selfClosing = false
            while true {
                while p < n, isSpace(bytes[p]) { if bytes[p] == 10 { line += 1 }; p += 1 }
                guard p < n else { throw fail("unterminated tag <\(nm)") }
                if bytes[p] == 62 { p += 1; break }
                if bytes[p] == 47 {
                    guard p + 1 < n, bytes[p + 1] == 62 else { throw fail("expected '/>' in <\(nm)") }
                    p += 2
                    selfClosing = true
                    break
                }
                _ = try name()
                while p < n, isSpace(bytes[p]) { p += 1 }
                guard p < n, bytes[p] == 61 else { throw fail("expected '=' after an attribute name in <\(nm)") }
                p += 1
                while p < n, isSpace(bytes[p]) { p += 1 }
                guard p < n, bytes[p] == 34 || bytes[p] == 39 else { throw fail("expected a quoted attribute value in <\(nm)") }
                let q = bytes[p]
                p += 1
                while p < n, bytes[p] != q { if bytes[p] == 10 { line += 1 }; p += 1 }
                guard p < n else { throw fail("unterminated attribute value in <\(nm)") }
                p += 1
            }
            if let top = stack.last {
                top.children.append(element)
            } else {
                guard root == nil else { throw fail("a second root element <\(nm)>") }
                root = element
            }
            if !selfClosing {
                guard stack.count < maxDepth else { throw fail("elements nested deeper than \(maxDepth)") }
                stack.append(element)
            }
        }
        if let open = stack.last { throw fail("unexpected end of file: <\(open.name)> (line \(open.line)) is not closed") }
        guard let root else { throw XMLError(message: "no root element", line: 0) }
        return root
    }
}
