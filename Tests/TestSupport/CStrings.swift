// Text from a C buffer filled by a C API (an error message, a line read by gzgets).

/// The buffer's bytes up to its first NUL (all of them if it has none), decoded as UTF-8.
public func textUpToNUL(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
