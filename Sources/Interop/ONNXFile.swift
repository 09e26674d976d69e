// Reading and writing .onnx files: size checked before anything is allocated, writes atomic.

import Runtime

public struct ONNXFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// Protobuf messages are limited to 2 GiB; ONNX models larger than that use external data,
/// which fergc does not read.
public let onnxMaxFileBytes = Int(Int32.max)

/// The bytes of a file no larger than `limit` (a protobuf message's 2 GiB by default), read as
/// every input file is (`readRegularFile`: no blocking on a FIFO, no buffer larger than this
/// process may allocate).
public func readONNXBytes(path: String, limit: Int = onnxMaxFileBytes) throws(ONNXFileError) -> [UInt8] {
    do { return try readRegularFile(path, limit: limit) } catch { throw ONNXFileError(path: path, message: error.what) }
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
