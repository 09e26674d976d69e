// The wire reader and writer: round trips, packed and unpacked repeated fields, and errors that
// name the field and the offset.

import Interop
import XCTest

final class ProtobufTests: XCTestCase {
    func testVarintsRoundTripIncludingNegativeAndExtremes() throws {
        let values: [Int64] = [0, 1, 127, 128, 300, -1, -2, Int64.max, Int64.min, 1 << 35]
        var w = WireWriter()
        for v in values { w.int64(3, v) }
        var r = WireReader(w.bytes, path: "m")
        var got: [Int64] = []
        while let f = try r.next() { got.append(try r.int64(f, "i")) }
        XCTAssertEqual(got, values)
        // Negative int64 varints take 10 bytes.
        var one = WireWriter()
        one.int64(1, -1)
        XCTAssertEqual(one.bytes.count, 11)
    }

    func testPackedAndUnpackedRepeatedFieldsDecodeTheSame() throws {
        let ints: [Int64] = [1, -3, 300, 0, 1 << 40]
        let floats: [Float] = [1.5, -0, .infinity, 3e-38, 42]
        var packed = ONNXAttribute(name: "ints", value: .ints(ints))
        var model = ONNXModel()
        model.irVersion = 7
        model.opsetImports = [("", 13)]
        model.graph.nodes = [ONNXNode(name: "n", opType: "X", inputs: ["a"], outputs: ["b"], attributes: [packed, ONNXAttribute(name: "f", value: .floats(floats))])]
        let bytes = encodeONNXModel(model)
        XCTAssertEqual(try decodeONNXModel(bytes), model)
        // The same attribute written unpacked by hand: field 8 once per value, field 7 as fixed32s.
        var a = WireWriter()
        a.string(1, "ints")
        for v in ints { a.int64(8, v) }
        a.int64(20, 7)
        var b = WireWriter()
        b.string(1, "f")
        for f in floats { b.float(7, f) }
        b.int64(20, 6)
        var node = WireWriter()
        node.string(1, "a"); node.string(2, "b"); node.string(3, "n"); node.string(4, "X")
        node.message(5, a); node.message(5, b)
        var graph = WireWriter()
        graph.message(1, node)
        graph.string(2, "")
        var opset = WireWriter()
        opset.int64(2, 13)
        var m = WireWriter()
        m.int64(1, 7); m.message(7, graph); m.message(8, opset)
        let decoded = try decodeONNXModel(m.bytes)
        packed.value = .ints(ints)
        XCTAssertEqual(decoded.graph.nodes[0].attributes[0], packed)
        XCTAssertEqual(decoded.graph.nodes[0].attributes[1].value, .floats(floats))
    }

    func testTensorFloatDataAndRawDataAgree() throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let raw = ONNXTensor(name: "w", dims: [2, 3], floats: values)
        var model = ONNXModel()
        model.irVersion = 7
        model.graph.initializers = [raw]
        XCTAssertEqual(try decodeONNXModel(encodeONNXModel(model)).graph.initializers, [raw])
        // float_data, unpacked, and dims unpacked.
        var t = WireWriter()
        t.int64(1, 2); t.int64(1, 3); t.int64(2, 1); t.string(8, "w")
        for v in values { t.float(4, v) }
        XCTAssertEqual(try decodeONNXTensor(t.bytes), raw)
        // A count that does not match the dims is an error naming the field.
        var bad = WireWriter()
        bad.packedInt64(1, [2, 3]); bad.int64(2, 1); bad.string(8, "w"); bad.packedFloats(4, [1, 2])
        XCTAssertThrowsError(try decodeONNXTensor(bad.bytes)) { e in
            XCTAssertTrue("\(e)".contains("float_data"), "\(e)")
            XCTAssertTrue("\(e)".contains("needs 6 values"), "\(e)")
        }
        // Dimensions whose product overflows are refused before any allocation.
        var huge = WireWriter()
        huge.packedInt64(1, [1 << 40, 1 << 40]); huge.int64(2, 1)
        XCTAssertThrowsError(try decodeONNXTensor(huge.bytes)) { e in XCTAssertTrue("\(e)".contains("elements"), "\(e)") }
    }

    func testLengthPastTheEnclosingMessageNamesFieldAndOffset() throws {
        // model.graph (field 7) claims 100 bytes; 3 are there.
        let bytes: [UInt8] = [0x08, 0x07, 0x3a, 100, 0x0a, 0x01, 0x00]
        XCTAssertThrowsError(try decodeONNXModel(bytes)) { e in
            guard let p = e as? ProtobufError else { return XCTFail("\(e)") }
            XCTAssertEqual(p.offset, 3)
            XCTAssertTrue(p.description.contains("runs past the end"), p.description)
        }
        // A node inside the graph whose input string overruns the node.
        var node = WireWriter()
        node.string(4, "Relu")
        var nb = node.bytes
        nb += [0x0a, 50, 0x41]  // input: length 50, one byte present
        var graph = WireWriter()
        graph.bytesField(1, nb)
        var m = WireWriter()
        m.int64(1, 7)
        m.message(7, graph)
        XCTAssertThrowsError(try decodeONNXModel(m.bytes)) { e in
            XCTAssertTrue("\(e)".hasPrefix("model.graph.node[0]"), "\(e)")
        }
        // Groups and wire types 6/7 are refused; a varint of 11 bytes too.
        XCTAssertThrowsError(try decodeONNXModel([0x0b])) { e in XCTAssertTrue("\(e)".contains("groups"), "\(e)") }
        XCTAssertThrowsError(try decodeONNXModel([0x0e])) { e in XCTAssertTrue("\(e)".contains("wire type 6"), "\(e)") }
        XCTAssertThrowsError(try decodeONNXModel([0x08] + [UInt8](repeating: 0xff, count: 10) + [0x01])) { e in XCTAssertTrue("\(e)".contains("varint"), "\(e)") }
        XCTAssertThrowsError(try decodeONNXModel([])) { e in XCTAssertTrue("\(e)".contains("no graph"), "\(e)") }
    }
}
