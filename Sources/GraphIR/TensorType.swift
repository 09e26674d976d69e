// Tensor types of the IR: an element type and a shape whose dimensions are either fixed or the
// symbolic batch dimension `N`, which a plan binds to a concrete batch size.

public enum DType: String, Hashable, Sendable, CaseIterable {
    case f32, i32

    public var byteSize: Int { 4 }
}

public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case batch
    case fixed(Int)

    public var description: String {
        switch self {
        case .batch: return "N"
        case .fixed(let n): return String(n)
        }
    }

    /// The size for a concrete batch.
    public func resolved(batch: Int) -> Int {
        switch self {
        case .batch: return batch
        case .fixed(let n): return n
        }
    }
}

public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var dims: [Dim]

    public init(_ dtype: DType = .f32, _ dims: [Dim]) {
        self.dtype = dtype
        self.dims = dims
    }

    /// A tensor whose first dimension is the batch: `f32[N, rest...]`.
    public static func batched(_ rest: [Int], _ dtype: DType = .f32) -> TensorType {
        TensorType(dtype, [.batch] + rest.map { .fixed($0) })
    }

    /// A tensor with fixed dimensions only (parameters, state, scalars).
    public static func fixed(_ dims: [Int], _ dtype: DType = .f32) -> TensorType {
        TensorType(dtype, dims.map { .fixed($0) })
    }

    public static let scalar = TensorType(.f32, [])

    public var rank: Int { dims.count }
    public var isBatched: Bool { dims.first == .batch }

    /// Dimensions after the batch dimension (all of them if the tensor is not batched).
    public var perSample: [Int] {
        (isBatched ? dims.dropFirst() : dims[...]).map { $0.resolved(batch: 1) }
    }

    /// Elements per sample if batched, else the element count.
    public var elementsPerSample: Int { perSample.reduce(1, *) }

    public func elementCount(batch: Int) -> Int {
        dims.reduce(1) { $0 * $1.resolved(batch: batch) }
    }

    public var description: String {
        "\(dtype.rawValue)[\(dims.map(\.description).joined(separator: ", "))]"
    }
}
