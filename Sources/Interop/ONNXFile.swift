// Reading and writing .onnx files: size checked before anything is allocated, writes atomic.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Runtime

public struct ONNXFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// Protobuf messages are limited to 2 GiB; ONNX models larger than that use external data,
/// which fergc does not read.
public let onnxMaxFileBytes = Int(Int32.max)

/// The bytes of a file no larger than `limit`.
public func readONNXBytes(path: String, limit: Int = onnxMaxFileBytes) throws(ONNXFileError) -> [UInt8] {
    func fail(_ m: String) -> ONNXFileError { ONNXFileError(path: path, message: m) }
    var st = stat()
    guard stat(path, &st) == 0 else { throw fail(errno == ENOENT ? "no such file" : String(cString: strerror(errno))) }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw fail("not a regular file") }
    guard Int(st.st_size) <= limit else { throw fail("\(st.st_size) bytes is more than the \(limit) a protobuf message may hold") }
    let memory = memoryLimit()
    guard Int(st.st_size) <= memory.bytes else { throw fail("\(st.st_size) bytes is more than this process may allocate: \(memory)") }
    guard let f = fopen(path, "rb") else { throw fail(String(cString: strerror(errno))) }
    defer { fclose(f) }
    var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
    let n = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
    guard n == bytes.count else { throw fail("read \(n) of \(bytes.count) bytes: \(ferror(f) != 0 ? String(cString: strerror(errno)) : "the file shrank")") }
    return bytes
}

/// Reads and decodes an .onnx file; errors name the file, the field and the byte offset.
public func readONNXModel(path: String) throws(ONNXFileError) -> ONNXModel {
    let bytes = try readONNXBytes(path: path)
    do { return try decodeONNXModel(bytes) } catch { throw ONNXFileError(path: path, message: "not a valid ONNX model: \(error)") }
}

/// Encodes and writes a model atomically.
public func writeONNXModel(_ model: ONNXModel, to path: String) throws(FileWriteError) {
    try writeFileAtomically(encodeONNXModel(model), to: path)
}
