// The part of ONNX's protobuf schema (onnx/onnx.proto) that fergc reads and writes: a model, its
// graph, nodes, attributes, tensors and value types. Fields fergc does not use are skipped when
// reading (their lengths still checked); subgraphs (If/Loop bodies), sparse tensors, functions and
// training info are skipped, which bounds the recursion. Field numbers are onnx.proto's.

/// ONNX TensorProto.DataType values fergc knows by name.
public enum ONNXDataType {
    public static let float: Int32 = 1
    public static let uint8: Int32 = 2
    public static let int8: Int32 = 3
    public static let int32: Int32 = 6
    public static let int64: Int32 = 7
    public static let bool: Int32 = 9
    public static let float16: Int32 = 10
    public static let double: Int32 = 11

    public static func name(_ t: Int32) -> String {
        let names: [Int32: String] = [0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16",
                                      6: "int32", 7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double",
                                      12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"]
        return names[t] ?? "type \(t)"
    }
}

/// A tensor's values, decoded to the element types fergc computes with.
public enum ONNXTensorData: Sendable, Equatable {
    case floats([Float])
    case int64s([Int64])
    /// Any other element type: what it is, never its values.
    case unsupported(Int32)
}

public struct ONNXTensor: Sendable, Equatable {
    public var name: String
    public var dims: [Int]
    public var dataType: Int32
    public var data: ONNXTensorData
    public init(name: String, dims: [Int], floats: [Float]) {
        self.name = name
        self.dims = dims
        dataType = ONNXDataType.float
        data = .floats(floats)
    }
    public init(name: String, dims: [Int], int64s: [Int64]) {
        self.name = name
        self.dims = dims
        dataType = ONNXDataType.int64
        data = .int64s(int64s)
    }
    init(name: String, dims: [Int], dataType: Int32, data: ONNXTensorData) {
        self.name = name
        self.dims = dims
        self.dataType = dataType
        self.data = data
    }
    public var elementCount: Int { dims.reduce(1, *) }
    public var floats: [Float]? { if case .floats(let f) = data { return f } else { return nil } }
    public var int64s: [Int64]? { if case .int64s(let v) = data { return v } else { return nil } }
}

public enum ONNXDim: Sendable, Equatable {
    case value(Int)
    case param(String)
    case unknown
}

public struct ONNXValueInfo: Sendable, Equatable {
    public var name: String
    /// The tensor element type; nil when the value is not a tensor (sequence, map, ...).
    public var elementType: Int32?
    /// nil when the shape is not given.
    public var shape: [ONNXDim]?
    public init(name: String, elementType: Int32?, shape: [ONNXDim]?) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
    }
}

public enum ONNXAttributeValue: Sendable, Equatable {
    case float(Float)
    case int(Int64)
    case string([UInt8])
    case tensor(ONNXTensor)
    case floats([Float])
    case ints([Int64])
    case strings([[UInt8]])
    /// Graphs, sparse tensors, type protos and lists of them: fergc uses none.
    case other(String)
}

public struct ONNXAttribute: Sendable, Equatable {
    public var name: String
    public var value: ONNXAttributeValue
    public init(name: String, value: ONNXAttributeValue) {
        self.name = name
        self.value = value
    }
}

public struct ONNXNode: Sendable, Equatable {
    public var name: String
    public var opType: String
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [ONNXAttribute]
    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String], attributes: [ONNXAttribute] = []) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
    public func attribute(_ name: String) -> ONNXAttributeValue? { attributes.first { $0.name == name }?.value }
}

public struct ONNXGraph: Sendable, Equatable {
    public var name: String = ""
    public var nodes: [ONNXNode] = []
    public var initializers: [ONNXTensor] = []
    public var inputs: [ONNXValueInfo] = []
    public var outputs: [ONNXValueInfo] = []
    public var valueInfo: [ONNXValueInfo] = []
    public var docString: String = ""
    /// Sparse initializers are not read; their presence is recorded so that a model using them
    /// is refused rather than misread.
    public var sparseInitializerCount = 0
    public init() {}
}

public struct ONNXModel: Sendable, Equatable {
    public var irVersion: Int64 = 0
    public var opsetImports: [(domain: String, version: Int64)] = []
    public var producerName = ""
    public var producerVersion = ""
    public var domain = ""
    public var modelVersion: Int64 = 0
    public var docString = ""
    public var graph = ONNXGraph()
    public var metadataProps: [(key: String, value: String)] = []
    /// Whether the model declares functions or training info (fergc uses neither).
    public var functionCount = 0
    public init() {}

    /// The opset of the default domain ("" or "ai.onnx"), nil if not imported.
    public var defaultOpset: Int64? {
        opsetImports.first { $0.domain == "" || $0.domain == "ai.onnx" }?.version
    }

    public func metadata(_ key: String) -> String? { metadataProps.first { $0.key == key }?.value }

    public static func == (a: ONNXModel, b: ONNXModel) -> Bool {
        a.irVersion == b.irVersion && a.opsetImports.elementsEqual(b.opsetImports, by: { $0 == $1 })
            && a.producerName == b.producerName && a.producerVersion == b.producerVersion && a.domain == b.domain
            && a.modelVersion == b.modelVersion && a.docString == b.docString && a.graph == b.graph
            && a.metadataProps.elementsEqual(b.metadataProps, by: { $0 == $1 }) && a.functionCount == b.functionCount
    }
}

// MARK: - Limits

/// Bounds on what a file may ask the reader to allocate.
public enum ONNXLimits {
    /// Elements in one tensor (the biggest fergc parameter is far below).
    public static let maxTensorElements = 1 << 31
    /// Tensor rank.
    public static let maxRank = 16
}

// MARK: - Decoding

/// Decodes a serialized ModelProto.
public func decodeONNXModel(_ bytes: [UInt8]) throws(ProtobufError) -> ONNXModel {
    var r = WireReader(bytes, path: "model")
    r.fieldNames = [1: "ir_version", 2: "producer_name", 3: "producer_version", 4: "domain", 5: "model_version",
                    6: "doc_string", 7: "graph", 8: "opset_import", 14: "metadata_props", 20: "training_info", 25: "functions"]
    var m = ONNXModel()
    var sawGraph = false
    while let f = try r.next() {
        switch f.number {
        case 1: m.irVersion = try r.int64(f, "ir_version")
        case 2: m.producerName = try r.string(f, "producer_name")
        case 3: m.producerVersion = try r.string(f, "producer_version")
        case 4: m.domain = try r.string(f, "domain")
        case 5: m.modelVersion = try r.int64(f, "model_version")
        case 6: m.docString = try r.string(f, "doc_string")
        case 7:
            guard !sawGraph else { throw r.error("graph given twice", at: f.tagOffset, field: "graph") }
            sawGraph = true
            m.graph = try decodeGraph(try r.message(f, "graph"))
        case 8:
            var o = try r.message(f, "opset_import[\(m.opsetImports.count)]")
            var domain = "", version: Int64 = 0
            while let g = try o.next() {
                switch g.number {
                case 1: domain = try o.string(g, "domain")
                case 2: version = try o.int64(g, "version")
                default: break
                }
            }
            m.opsetImports.append((domain, version))
        case 14: m.metadataProps.append(try decodeEntry(try r.message(f, "metadata_props[\(m.metadataProps.count)]")))
        case 20, 25:
            try r.expect(f, .lengthDelimited, f.number == 20 ? "training_info" : "functions")
            m.functionCount += 1
        default: break
        }
    }
    guard sawGraph else { throw ProtobufError(path: "model", offset: bytes.count, message: "no graph (field 7): not an ONNX model") }
    return m
}

func decodeEntry(_ reader: WireReader) throws(ProtobufError) -> (key: String, value: String) {
    var r = reader
    var k = "", v = ""
    while let f = try r.next() {
        switch f.number {
        case 1: k = try r.string(f, "key")
        case 2: v = try r.string(f, "value")
        default: break
        }
    }
    return (k, v)
}

func decodeGraph(_ reader: WireReader) throws(ProtobufError) -> ONNXGraph {
    var r = reader
    r.fieldNames = [1: "node", 2: "name", 5: "initializer", 10: "doc_string", 11: "input", 12: "output",
                    13: "value_info", 15: "sparse_initializer"]
    var g = ONNXGraph()
    while let f = try r.next() {
        switch f.number {
        case 1: g.nodes.append(try decodeNode(try r.message(f, "node[\(g.nodes.count)]")))
        case 2: g.name = try r.string(f, "name")
        case 5: g.initializers.append(try decodeTensor(try r.message(f, "initializer[\(g.initializers.count)]")))
        case 10: g.docString = try r.string(f, "doc_string")
        case 11: g.inputs.append(try decodeValueInfo(try r.message(f, "input[\(g.inputs.count)]")))
        case 12: g.outputs.append(try decodeValueInfo(try r.message(f, "output[\(g.outputs.count)]")))
        case 13: g.valueInfo.append(try decodeValueInfo(try r.message(f, "value_info[\(g.valueInfo.count)]")))
        case 15:
            try r.expect(f, .lengthDelimited, "sparse_initializer")
            g.sparseInitializerCount += 1
        default: break
        }
    }
    return g
}

func decodeNode(_ reader: WireReader) throws(ProtobufError) -> ONNXNode {
    var r = reader
    r.fieldNames = [1: "input", 2: "output", 3: "name", 4: "op_type", 5: "attribute", 6: "doc_string", 7: "domain"]
    var n = ONNXNode(name: "", opType: "", inputs: [], outputs: [])
    while let f = try r.next() {
        switch f.number {
        case 1: n.inputs.append(try r.string(f, "input[\(n.inputs.count)]"))
        case 2: n.outputs.append(try r.string(f, "output[\(n.outputs.count)]"))
        case 3: n.name = try r.string(f, "name")
        case 4: n.opType = try r.string(f, "op_type")
        case 5: n.attributes.append(try decodeAttribute(try r.message(f, "attribute[\(n.attributes.count)]")))
        case 7: n.domain = try r.string(f, "domain")
        default: break
        }
    }
    return n
}

func decodeAttribute(_ reader: WireReader) throws(ProtobufError) -> ONNXAttribute {
    var r = reader
    r.fieldNames = [1: "name", 4: "s", 5: "t", 6: "g", 7: "floats", 8: "ints", 9: "strings", 10: "tensors", 11: "graphs",
                    13: "doc_string", 14: "tp", 15: "type_protos", 21: "ref_attr_name", 22: "sparse_tensor", 23: "sparse_tensors"]
    var name = ""
    var type: Int64?
    var f32: Float?, i64: Int64?, s: [UInt8]?, t: ONNXTensor?
    var floatBits: [UInt64] = [], ints: [Int64] = [], strings: [[UInt8]] = []
    var other: String?
    var refAttr = false
    while let f = try r.next() {
        switch f.number {
        case 1: name = try r.string(f, "name")
        case 2: f32 = try r.float(f, "f")
        case 3: i64 = try r.int64(f, "i")
        case 4: s = try r.bytesValue(f, "s")
        case 5: t = try decodeTensor(try r.message(f, "t"))
        case 6, 11: try r.expect(f, .lengthDelimited, "g"); other = "a graph"
        case 22, 23: try r.expect(f, .lengthDelimited, "sparse_tensor"); other = "a sparse tensor"
        case 14, 15: try r.expect(f, .lengthDelimited, "tp"); other = "a type"
        case 7: try r.appendFixed(f, "floats", width: 4, to: &floatBits)
        case 8: try r.appendVarints(f, "ints", to: &ints)
        case 9: strings.append(try r.bytesValue(f, "strings"))
        case 10: try r.expect(f, .lengthDelimited, "tensors"); other = "a list of tensors"
        case 20: type = try r.int64(f, "type")
        case 21: _ = try r.string(f, "ref_attr_name"); refAttr = true
        default: break
        }
    }
    let value: ONNXAttributeValue
    // The type field says which value is meant (IR 0.0.2+); without it, the one present.
    switch type {
    case 1: value = .float(f32 ?? 0)
    case 2: value = .int(i64 ?? 0)
    case 3: value = .string(s ?? [])
    case 4:
        guard let t else { throw r.error("attribute '\(name)' of type TENSOR has no tensor", field: "t") }
        value = .tensor(t)
    case 6: value = .floats(floatBits.map { Float(bitPattern: UInt32(truncatingIfNeeded: $0)) })
    case 7: value = .ints(ints)
    case 8: value = .strings(strings)
    case 5, 9, 10, 11, 12, 13, 14: value = .other(other ?? "type \(type!)")
    case 0?, nil:
        if let f32 { value = .float(f32) } else if let i64 { value = .int(i64) } else if let s { value = .string(s) }
        else if let t { value = .tensor(t) } else if !floatBits.isEmpty { value = .floats(floatBits.map { Float(bitPattern: UInt32(truncatingIfNeeded: $0)) }) }
        else if !ints.isEmpty { value = .ints(ints) } else if !strings.isEmpty { value = .strings(strings) }
        else { value = .other(other ?? (refAttr ? "a reference to a function attribute" : "no value")) }
    case let t?:
        throw r.error("attribute '\(name)' has unknown type \(t)", field: "type")
    }
    return ONNXAttribute(name: name, value: refAttr ? .other("a reference to a function attribute") : value)
}

func decodeValueInfo(_ reader: WireReader) throws(ProtobufError) -> ONNXValueInfo {
    var r = reader
    r.fieldNames = [1: "name", 2: "type", 3: "doc_string"]
    var v = ONNXValueInfo(name: "", elementType: nil, shape: nil)
    while let f = try r.next() {
        switch f.number {
        case 1: v.name = try r.string(f, "name")
        case 2:
            var t = try r.message(f, "type")
            while let g = try t.next() {
                guard g.number == 1 else { continue }  // tensor_type; sequences, maps etc. stay nil
                var tt = try t.message(g, "tensor_type")
                while let h = try tt.next() {
                    switch h.number {
                    case 1: v.elementType = try tt.int32(h, "elem_type")
                    case 2:
                        var s = try tt.message(h, "shape")
                        var dims: [ONNXDim] = []
                        while let d = try s.next() {
                            guard d.number == 1 else { continue }
                            guard dims.count < ONNXLimits.maxRank else {
                                throw s.error("more than \(ONNXLimits.maxRank) dimensions", at: d.tagOffset, field: "dim")
                            }
                            var dr = try s.message(d, "dim[\(dims.count)]")
                            var dim = ONNXDim.unknown
                            while let e = try dr.next() {
                                switch e.number {
                                case 1:
                                    let n = try dr.int64(e, "dim_value")
                                    guard n >= 0, n <= Int64(Int32.max) else { throw dr.error("dimension \(n) out of range", at: e.tagOffset, field: "dim_value") }
                                    dim = .value(Int(n))
                                case 2: dim = .param(try dr.string(e, "dim_param"))
                                default: break
                                }
                            }
                            dims.append(dim)
                        }
                        v.shape = dims
                    default: break
                    }
                }
                if v.elementType == nil { v.elementType = 0 }
            }
        default: break
        }
    }
    return v
}

/// Decodes a serialized TensorProto (an initializer, a Constant's value, or a `.pb` test file).
public func decodeONNXTensor(_ bytes: [UInt8], path: String = "tensor") throws(ProtobufError) -> ONNXTensor {
    try decodeTensor(WireReader(bytes, path: path))
}

func decodeTensor(_ reader: WireReader) throws(ProtobufError) -> ONNXTensor {
    var r = reader
    r.fieldNames = [1: "dims", 3: "segment", 4: "float_data", 5: "int32_data", 6: "string_data", 7: "int64_data", 8: "name",
                    9: "raw_data", 10: "double_data", 11: "uint64_data", 12: "doc_string", 13: "external_data"]
    var dims: [Int64] = []
    var dataType: Int32 = 0
    var name = ""
    var raw: Range<Int>?
    var floatBits: [UInt64] = [], doubleBits: [UInt64] = []
    var int64s: [Int64] = [], int32s: [Int64] = []
    var external = false
    var segment = false
    while let f = try r.next() {
        switch f.number {
        case 1: try r.appendVarints(f, "dims", to: &dims)
        case 2: dataType = try r.int32(f, "data_type")
        case 3: try r.expect(f, .lengthDelimited, "segment"); segment = true
        case 4: try r.appendFixed(f, "float_data", width: 4, to: &floatBits)
        case 5: try r.appendVarints(f, "int32_data", to: &int32s)
        case 7: try r.appendVarints(f, "int64_data", to: &int64s)
        case 8: name = try r.string(f, "name")
        case 9: try r.expect(f, .lengthDelimited, "raw_data"); raw = f.payload
        case 10: try r.appendFixed(f, "double_data", width: 8, to: &doubleBits)
        case 13: try r.expect(f, .lengthDelimited, "external_data"); external = true
        case 14: if try r.int64(f, "data_location") == 1 { external = true }
        default: break
        }
        guard dims.count <= ONNXLimits.maxRank else { throw r.error("tensor has more than \(ONNXLimits.maxRank) dimensions", at: f.tagOffset, field: "dims") }
    }
    let label = name.isEmpty ? "" : " '\(name)'"
    if external { throw r.error("tensor\(label) keeps its data in an external file, which fergc does not read") }
    if segment { throw r.error("tensor\(label) is a segment of a larger tensor, which fergc does not read") }
    var count = 1
    for d in dims {
        guard d >= 0 else { throw r.error("tensor\(label) has a negative dimension \(d)", field: "dims") }
        let (p, o) = count.multipliedReportingOverflow(by: Int(d))
        guard !o, p <= ONNXLimits.maxTensorElements else {
            throw r.error("tensor\(label) with dimensions \(dims) has more than \(ONNXLimits.maxTensorElements) elements", field: "dims")
        }
        count = p
    }
    func checkCount(_ n: Int, _ field: String) throws(ProtobufError) {
        guard n == count else {
            throw r.error("tensor\(label) with dimensions \(dims) needs \(count) values, \(field) has \(n)", field: field)
        }
    }
    func rawBytes(width: Int) throws(ProtobufError) -> ArraySlice<UInt8>? {
        guard let raw else { return nil }
        guard raw.count == count * width else {
            throw r.error("tensor\(label) with dimensions \(dims) needs \(count * width) bytes of raw_data, has \(raw.count)", at: raw.lowerBound, field: "raw_data")
        }
        return r.bytes[raw]
    }
    let data: ONNXTensorData
    switch dataType {
    case ONNXDataType.float:
        if let b = try rawBytes(width: 4) {
            var out = [Float](repeating: 0, count: count)
            #if _endian(little)
            out.withUnsafeMutableBytes { dst in b.withUnsafeBytes { dst.copyMemory(from: $0) } }
            #else
            var i = b.startIndex
            for k in 0..<count {
                out[k] = Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
                i += 4
            }
            #endif
            data = .floats(out)
        } else {
            try checkCount(floatBits.count, "float_data")
            data = .floats(floatBits.map { Float(bitPattern: UInt32(truncatingIfNeeded: $0)) })
        }
    case ONNXDataType.double:
        if let b = try rawBytes(width: 8) {
            var out = [Float](repeating: 0, count: count)
            var i = b.startIndex
            for k in 0..<count {
                var v: UInt64 = 0
                for j in 0..<8 { v |= UInt64(b[i + j]) << (8 * UInt64(j)) }
                out[k] = Float(Double(bitPattern: v))
                i += 8
            }
            data = .floats(out)
        } else {
            try checkCount(doubleBits.count, "double_data")
            data = .floats(doubleBits.map { Float(Double(bitPattern: $0)) })
        }
    case ONNXDataType.int64:
        if let b = try rawBytes(width: 8) {
            var out = [Int64](repeating: 0, count: count)
            var i = b.startIndex
            for k in 0..<count {
                var v: UInt64 = 0
                for j in 0..<8 { v |= UInt64(b[i + j]) << (8 * UInt64(j)) }
                out[k] = Int64(bitPattern: v)
                i += 8
            }
            data = .int64s(out)
        } else {
            try checkCount(int64s.count, "int64_data")
            data = .int64s(int64s)
        }
    case ONNXDataType.int32:
        if let b = try rawBytes(width: 4) {
            var out = [Int64](repeating: 0, count: count)
            var i = b.startIndex
            for k in 0..<count {
                out[k] = Int64(Int32(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24))
                i += 4
            }
            data = .int64s(out)
        } else {
            try checkCount(int32s.count, "int32_data")
            data = .int64s(int32s)
        }
    default:
        data = .unsupported(dataType)
    }
    return ONNXTensor(name: name, dims: dims.map { Int($0) }, dataType: dataType, data: data)
}

// MARK: - Encoding

/// Serializes a model (fields in onnx.proto's order of importance; repeated scalars packed;
/// float and int64 tensors as raw_data, little-endian).
public func encodeONNXModel(_ m: ONNXModel) -> [UInt8] {
    var w = WireWriter()
    w.int64(1, m.irVersion)
    if !m.producerName.isEmpty { w.string(2, m.producerName) }
    if !m.producerVersion.isEmpty { w.string(3, m.producerVersion) }
    if !m.domain.isEmpty { w.string(4, m.domain) }
    if m.modelVersion != 0 { w.int64(5, m.modelVersion) }
    if !m.docString.isEmpty { w.string(6, m.docString) }
    w.message(7, encodeGraph(m.graph))
    for o in m.opsetImports {
        var e = WireWriter()
        if !o.domain.isEmpty { e.string(1, o.domain) }
        e.int64(2, o.version)
        w.message(8, e)
    }
    for p in m.metadataProps { w.message(14, encodeEntry(p.key, p.value)) }
    return w.bytes
}

func encodeEntry(_ k: String, _ v: String) -> WireWriter {
    var e = WireWriter()
    e.string(1, k)
    e.string(2, v)
    return e
}

func encodeGraph(_ g: ONNXGraph) -> WireWriter {
    var w = WireWriter()
    for n in g.nodes { w.message(1, encodeNode(n)) }
    w.string(2, g.name)
    for t in g.initializers { w.message(5, encodeTensor(t)) }
    if !g.docString.isEmpty { w.string(10, g.docString) }
    for v in g.inputs { w.message(11, encodeValueInfo(v)) }
    for v in g.outputs { w.message(12, encodeValueInfo(v)) }
    for v in g.valueInfo { w.message(13, encodeValueInfo(v)) }
    return w
}

func encodeNode(_ n: ONNXNode) -> WireWriter {
    var w = WireWriter()
    for i in n.inputs { w.string(1, i) }
    for o in n.outputs { w.string(2, o) }
    if !n.name.isEmpty { w.string(3, n.name) }
    w.string(4, n.opType)
    for a in n.attributes { w.message(5, encodeAttribute(a)) }
    if !n.domain.isEmpty { w.string(7, n.domain) }
    return w
}

func encodeAttribute(_ a: ONNXAttribute) -> WireWriter {
    var w = WireWriter()
    w.string(1, a.name)
    switch a.value {
    case .float(let f): w.float(2, f); w.int64(20, 1)
    case .int(let i): w.int64(3, i); w.int64(20, 2)
    case .string(let s): w.bytesField(4, s); w.int64(20, 3)
    case .tensor(let t): w.message(5, encodeTensor(t)); w.int64(20, 4)
    case .floats(let f): w.packedFloats(7, f); w.int64(20, 6)
    case .ints(let i): w.packedInt64(8, i); w.int64(20, 7)
    case .strings(let s): for x in s { w.bytesField(9, x) }; w.int64(20, 8)
    case .other: break
    }
    return w
}

func encodeValueInfo(_ v: ONNXValueInfo) -> WireWriter {
    var w = WireWriter()
    w.string(1, v.name)
    if let et = v.elementType {
        var tensor = WireWriter()
        tensor.int64(1, Int64(et))
        if let shape = v.shape {
            var s = WireWriter()
            for d in shape {
                var dw = WireWriter()
                switch d {
                case .value(let n): dw.int64(1, Int64(n))
                case .param(let p): dw.string(2, p)
                case .unknown: break
                }
                s.message(1, dw)
            }
            tensor.message(2, s)
        }
        var type = WireWriter()
        type.message(1, tensor)
        w.message(2, type)
    }
    return w
}

func encodeTensor(_ t: ONNXTensor) -> WireWriter {
    var w = WireWriter()
    if !t.dims.isEmpty { w.packedInt64(1, t.dims.map { Int64($0) }) }
    w.int64(2, Int64(t.dataType))
    if !t.name.isEmpty { w.string(8, t.name) }
    switch t.data {
    case .floats(let f):
        #if _endian(little)
        let raw = f.withUnsafeBytes { Array($0) }
        #else
        var raw = [UInt8]()
        raw.reserveCapacity(f.count * 4)
        for v in f {
            let b = v.bitPattern
            raw.append(UInt8(truncatingIfNeeded: b)); raw.append(UInt8(truncatingIfNeeded: b >> 8))
            raw.append(UInt8(truncatingIfNeeded: b >> 16)); raw.append(UInt8(truncatingIfNeeded: b >> 24))
        }
        #endif
        w.bytesField(9, raw)
    case .int64s(let v):
        var raw = [UInt8]()
        raw.reserveCapacity(v.count * 8)
        for x in v {
            let b = UInt64(bitPattern: x)
            for k in 0..<8 { raw.append(UInt8(truncatingIfNeeded: b >> (8 * UInt64(k)))) }
        }
        w.bytesField(9, raw)
    case .unsupported: break
    }
    return w
}
