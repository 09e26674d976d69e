/// Error thrown by every NumPyIO entry point; `message` names the file/member and what is wrong.
public struct NumPyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A dense n-dimensional array as stored in a .npy file: little-endian raw bytes in C order.
public struct NDArray: Sendable, Equatable {
    public enum DType: String, Sendable, CaseIterable {
        case float32 = "<f4", float64 = "<f8", int32 = "<i4", int64 = "<i8", uint8 = "|u1"

        /// Bytes per element.
        public var itemSize: Int {
            switch self {
            case .float32, .int32: 4
            case .float64, .int64: 8
            case .uint8: 1
            }
        }
    }

    public var dtype: DType
    public var shape: [Int]
    public var data: [UInt8]

    /// Raw initializer; `data.count` should equal `product(shape) * dtype.itemSize`.
    public init(dtype: DType, shape: [Int], data: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public init(floats: [Float], shape: [Int]) {
        precondition(NDArray.elementCount(shape) == floats.count, "NDArray: \(floats.count) values for shape \(shape)")
        var d = [UInt8]()
        d.reserveCapacity(floats.count * 4)
        for f in floats { appendLE(f.bitPattern, to: &d) }
        self.init(dtype: .float32, shape: shape, data: d)
    }

    public init(ints: [Int32], shape: [Int]) {
        precondition(NDArray.elementCount(shape) == ints.count, "NDArray: \(ints.count) values for shape \(shape)")
        var d = [UInt8]()
        d.reserveCapacity(ints.count * 4)
        for v in ints { appendLE(UInt32(bitPattern: v), to: &d) }
        self.init(dtype: .int32, shape: shape, data: d)
    }

    /// A uint8 array.
    public init(bytes: [UInt8], shape: [Int]) {
        precondition(NDArray.elementCount(shape) == bytes.count, "NDArray: \(bytes.count) values for shape \(shape)")
        self.init(dtype: .uint8, shape: shape, data: bytes)
    }

    /// Number of elements (product of `shape`; 1 for a scalar).
    public var count: Int { NDArray.elementCount(shape) ?? data.count / dtype.itemSize }

    /// Product of `shape`, or nil if a dimension is negative or the product overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// All elements converted to Float (float64/int64 may lose precision).
    public var floats: [Float] {
        switch dtype {
        case .float32: return decode(UInt32.self) { Float(bitPattern: $0) }
        case .float64: return decode(UInt64.self) { Float(Double(bitPattern: $0)) }
        case .int32: return decode(UInt32.self) { Float(Int32(bitPattern: $0)) }
        case .int64: return decode(UInt64.self) { Float(Int64(bitPattern: $0)) }
        case .uint8: return data.map { Float($0) }
        }
    }

    /// All elements converted to Int32. Integers outside the Int32 range are clamped; floats are
    /// truncated toward zero and clamped (NaN becomes 0). Use `exactInts(name:)` to reject lossy values.
    public var ints: [Int32] {
        switch dtype {
        case .float32: return decode(UInt32.self) { clampToInt32(Double(Float(bitPattern: $0))) }
        case .float64: return decode(UInt64.self) { clampToInt32(Double(bitPattern: $0)) }
        case .int32: return decode(UInt32.self) { Int32(bitPattern: $0) }
        case .int64: return decode(UInt64.self) { Int32(clamping: Int64(bitPattern: $0)) }
        case .uint8: return data.map { Int32($0) }
        }
    }

    /// Like `ints`, but throws if any value is not exactly representable as Int32.
    public func exactInts(name: String = "array") throws(NumPyError) -> [Int32] {
        let values = ints
        let exact: Bool
        switch dtype {
        case .int32, .uint8: exact = true
        case .float32: exact = zip(floats, values).allSatisfy { Float(exactly: $1) == $0 }
        case .float64: exact = zip(decode(UInt64.self) { Double(bitPattern: $0) }, values).allSatisfy { Double($1) == $0 }
        case .int64: exact = zip(decode(UInt64.self) { Int64(bitPattern: $0) }, values).allSatisfy { Int64($1) == $0 }
        }
        guard exact else { throw NumPyError("\(name): \(dtype.rawValue) values are not all exact Int32 integers") }
        return values
    }

    /// Decodes little-endian words of type `W` (ignores a trailing partial element).
    private func decode<W: FixedWidthInteger, T>(_: W.Type, _ f: (W) -> T) -> [T] {
        let size = MemoryLayout<W>.size
        let n = data.count / size
        return data.withUnsafeBytes { raw in
            (0..<n).map { f(W(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * size, as: W.self))) }
        }
    }
}

private func clampToInt32(_ v: Double) -> Int32 {
    if v.isNaN { return 0 }
    if v >= 2_147_483_647 { return .max }
    if v <= -2_147_483_648 { return .min }
    return Int32(v)
}

@inline(__always)
func appendLE<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
}
