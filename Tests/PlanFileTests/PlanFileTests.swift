// The .plan format: checksums against known vectors, exact round trips, and corruption — every
// truncation and every single-bit flip of a small plan must be a clear error, never a crash
// and never a silently different plan.

import Foundation
import Runtime
import XCTest

@testable import Runtime

final class ChecksumTests: XCTestCase {
    func testCRC32KnownValues() {
        XCTAssertEqual(crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(crc32([]), 0)
        XCTAssertEqual(crc32(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
        // Continuing over pieces equals one pass.
        let bytes = Array("123456789".utf8)
        XCTAssertEqual(crc32(bytes, 4..<9, crc: crc32(bytes, 0..<4)), 0xCBF4_3926)
        // Slicing by 8 agrees with the bitwise definition at every length and alignment.
        func reference(_ b: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for x in b {
                c ^= UInt32(x)
                for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        let data = (0..<300).map { UInt8(truncatingIfNeeded: Int(pseudoRandom(5, $0) * 1000)) }
        for start in 0..<9 {
            for end in stride(from: start, through: data.count, by: 7) {
                XCTAssertEqual(crc32(data, start..<end), reference(data[start..<end]), "\(start)..<\(end)")
            }
        }
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(sha256Hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256Hex(Array("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)),
                       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(sha256Hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Streaming in uneven pieces equals one pass.
        var s = SHA256()
        var i = 0, piece = 1
        while i < million.count {
            let n = min(piece, million.count - i)
            million.withUnsafeBytes { s.update(UnsafeRawBufferPointer(rebasing: $0[i..<i + n])) }
            i += n
            piece = piece * 3 % 1000 + 1
        }
        XCTAssertEqual(hexString(s.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

/// Field-by-field equality of plans (Plan is not Equatable).
func assertSamePlan(_ a: Plan, _ b: Plan, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.name, b.name, file: file, line: line)
    XCTAssertEqual(a.buffers, b.buffers, file: file, line: line)
    XCTAssertEqual(a.steps, b.steps, file: file, line: line)
    XCTAssertEqual(a.maxBatch, b.maxBatch, file: file, line: line)
    XCTAssertEqual(a.outputs, b.outputs, file: file, line: line)
    XCTAssertEqual(a.metadata, b.metadata, file: file, line: line)
    XCTAssertEqual(a.memory, b.memory, file: file, line: line)
    XCTAssertEqual(a.parameters.keys.sorted(), b.parameters.keys.sorted(), file: file, line: line)
    for (k, v) in a.parameters {
        XCTAssertEqual(v.map(\.bitPattern), b.parameters[k]?.map(\.bitPattern), "parameter \(k)", file: file, line: line)
    }
}

/// Rewrites the CRCs of a file's sections and its end marker, so that a test can change a
/// payload and reach the decoder behind the checksums.
func fixChecksums(_ bytes: inout [UInt8]) {
    func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
    func putU32(_ v: UInt32, _ at: Int) { for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: v >> UInt32(8 * k)) } }
    let producerLength = Int(bytes[12]) | Int(bytes[13]) << 8
    var pos = (16 + producerLength + 7) / 8 * 8
    while true {
        while pos % 64 != 48 { pos += 1 }
        let tag = String(decoding: bytes[pos..<pos + 4], as: UTF8.self)
        let length = u64(pos + 4)
        if tag == "END " { putU32(crc32(bytes, 0..<pos), pos + 16) }
        putU32(crc32(bytes, pos + 16..<pos + 16 + length), pos + 12)
        if tag == "END " { return }
        pos += 16 + length
    }
}

final class PlanFileTests: XCTestCase {
    func testRoundTripIsExactAndDeterministic() throws {
        let plan = try tinyPlan()
        let bytes = encodePlan(plan)
        let file = try decodePlanFile(bytes)
        assertSamePlan(plan, file.plan)
        XCTAssertEqual(encodePlan(file.plan), bytes, "re-encoding a decoded plan gives the same bytes")
        XCTAssertEqual(file.formatVersion, "1.0")
        XCTAssertEqual(file.producer, PlanFormat.producer)
        XCTAssertEqual(file.sections.map(\.tag), ["META", "BUFS", "SCHD", "PARM"])
        XCTAssertEqual(file.weightsSHA256, weightsSHA256(plan))
        XCTAssertEqual(file.weightsSHA256.count, 64)
        // Parameter data is 64-byte aligned in the file.
        let parm = file.sections.first { $0.tag == "PARM" }!
        XCTAssertEqual(parm.offset % 64, 0)
        XCTAssertLessThan(bytes.count, 16_000, "the corruption tests rely on a small plan")

        // The decoded plan runs and computes what the original does.
        let x = plan.buffer(named: "x")!
        let images = (0..<2 * plan.buffers[x].elementsPerSample).map { pseudoRandom(99, $0) }
        var outputs: [[Float]] = []
        for p in [plan, file.plan] {
            let ex = try Executor<Float>(plan: p)
            for (i, b) in p.buffers.enumerated() { if let v = p.parameters[b.name] { ex.setBuffer(i, v) } }
            ex.setBuffer(x, images)
            try ex.run(batch: 2)
            outputs.append(ex.buffer(p.outputs[0]))
        }
        XCTAssertEqual(outputs[0], outputs[1])
    }

    func testWeightsHashDependsOnlyOnWeights() throws {
        var plan = try tinyPlan()
        let hash = weightsSHA256(plan)
        plan.metadata.modelName = "renamed"
        plan.steps[0].name = "renamed"
        XCTAssertEqual(weightsSHA256(plan), hash)
        let name = plan.parameters.keys.sorted()[0]
        plan.parameters[name]![0] = plan.parameters[name]![0].nextUp
        XCTAssertNotEqual(weightsSHA256(plan), hash)
    }

    /// The required corruption test: every prefix of the file is rejected, with the offset.
    func testEveryTruncationIsRejected() throws {
        let bytes = encodePlan(try tinyPlan())
        for length in 0..<bytes.count {
            do {
                _ = try decodePlan(Array(bytes[0..<length]))
                XCTFail("a file truncated to \(length) of \(bytes.count) bytes was accepted")
                return
            } catch {
                XCTAssertNotNil(error.offset, "truncated to \(length): \(error)")
                XCTAssertTrue(error.description.contains("offset"), "truncated to \(length): \(error)")
                if length >= 8 {
                    XCTAssertTrue([.truncated, .malformed].contains(error.kind), "truncated to \(length): \(error)")
                }
            }
        }
    }

    /// The required corruption test: every single-bit flip is rejected, naming the section (or
    /// header / end marker) and the offset. (On the mini model: each of the 8 x size variants is
    /// checksummed up to the flipped bit, so the cost grows with the square of the size.)
    func testEveryBitFlipIsRejected() throws {
        var bytes = encodePlan(try miniPlan())
        let sections = try decodePlanFile(bytes).sections.map { "\($0.tag) \($0.length)" }
        print("bit flips: \(bytes.count) bytes (\(sections.joined(separator: ", "))), \(bytes.count * 8) variants")
        var kinds: [PlanFileError.Kind: Int] = [:]
        for i in bytes.indices {
            for bit in 0..<8 {
                bytes[i] ^= 1 << UInt8(bit)
                defer { bytes[i] ^= 1 << UInt8(bit) }
                do {
                    _ = try decodePlan(bytes)
                    XCTFail("flipping bit \(bit) of byte \(i) was not detected")
                    return
                } catch {
                    kinds[error.kind, default: 0] += 1
                    let text = error.description
                    XCTAssertTrue(text.contains("offset"), "bit \(bit) of byte \(i): \(text)")
                    XCTAssertTrue(text.contains("section '") || text.contains("header") || text.contains("end marker"),
                                  "bit \(bit) of byte \(i): \(text)")
                }
            }
        }
        XCTAssertGreaterThan(kinds[.checksum] ?? 0, bytes.count * 7, "\(kinds)")
        XCTAssertNotNil(kinds[.notAPlan])
        XCTAssertNotNil(kinds[.newerVersion])
    }

    func testErrorMessagesNameTheProblem() throws {
        let bytes = encodePlan(try tinyPlan())
        func error(_ b: [UInt8]) -> PlanFileError? {
            do { _ = try decodePlan(b); return nil } catch { return error }
        }
        // A newer major version.
        var newer = bytes
        newer[10] = 2
        let e1 = try XCTUnwrap(error(newer))
        XCTAssertEqual(e1.kind, .newerVersion)
        XCTAssertTrue(e1.description.contains("written by a newer fergc: format version 2.0"), e1.description)
        // Not a plan at all.
        let e2 = try XCTUnwrap(error(Array("P5\n48 48\n255\n".utf8)))
        XCTAssertEqual(e2.kind, .notAPlan)
        XCTAssertTrue(e2.description.contains("not a fergc plan file"), e2.description)
        // What the file seems to be instead, with what to do (the files most often passed by mistake).
        let graphText = Array("# a model\nmodel m\ninput x: f32[N, 1, 4, 4]\n".utf8)
        let npz: [UInt8] = [0x50, 0x4B, 0x03, 0x04] + Array(repeating: 0, count: 30)
        let onnx: [UInt8] = [0x08, 0x07, 0x12, 0x07] + Array("pytorch".utf8) + [0x1A, 0x00]
        let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 0, count: 12)
        let cases: [([UInt8], String)] = [
            (graphText, "fergc compile M.graph -o M.plan"), (npz, "--weights CHECKPOINT.npz"),
            (onnx, "fergc import MODEL.onnx"), (jpeg, "a JPEG image"), ([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0], "gzip"),
        ]
        for (b, expected) in cases {
            let e = try XCTUnwrap(error(b))
            XCTAssertEqual(e.kind, .notAPlan)
            XCTAssertTrue(e.description.contains(expected), e.description)
        }
        // Bytes that are none of those get no guess.
        let noise: [UInt8] = [0x00, 0x01, 0x02, 0x03, 0xFE, 0x00, 0x7F, 0x10, 0x00]
        XCTAssertFalse(try XCTUnwrap(error(noise)).description.contains(" it "), "no guess for noise")
        // A payload byte of the schedule.
        let schd = try decodePlanFile(bytes).sections.first { $0.tag == "SCHD" }!
        var flipped = bytes
        flipped[schd.offset + 10] ^= 0x20
        let e3 = try XCTUnwrap(error(flipped))
        XCTAssertEqual(e3.kind, .checksum)
        XCTAssertTrue(e3.description.hasPrefix("section 'SCHD' at offset \(schd.offset - 16): CRC-32 mismatch"), e3.description)
        // Past the end marker.
        let e4 = try XCTUnwrap(error(bytes + [0]))
        XCTAssertTrue(e4.description.contains("1 bytes after the end marker"), e4.description)
        // From a path.
        XCTAssertThrowsError(try readPlan(path: "/nonexistent/m.plan")) { e in
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent/m.plan: cannot open"), "\(e)")
        }
    }

    /// Behind valid checksums (a writer bug, a crafted file): changed JSON or parameter bytes
    /// are rejected or give a plan that passes validation, and nothing crashes.
    func testMutationsBehindValidChecksumsNeverCrash() throws {
        let original = encodePlan(try tinyPlan())
        let file = try decodePlanFile(original)
        var state: UInt64 = 12345
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        var rejected = 0, accepted = 0
        let interesting: [UInt8] = Array("0123456789-.e\"{}[],:9".utf8) + [0, 0x7F, 0xFF]
        for section in file.sections {
            for _ in 0..<150 {
                var bytes = original
                for _ in 0..<(1 + next() % 3) {
                    let at = section.offset + next() % section.length
                    bytes[at] = next() % 2 == 0 ? interesting[next() % interesting.count] : UInt8(next() % 256)
                }
                fixChecksums(&bytes)
                do {
                    let plan = try decodePlan(bytes)
                    _ = try Executor<Float>(plan: plan)  // what decodes, the executor accepts
                    accepted += 1
                } catch let e as PlanFileError {
                    // Format errors say where; validation errors say what (step, buffer).
                    XCTAssertTrue(e.kind == .invalidPlan ? e.description.contains("invalid plan") : e.offset != nil, "\(e)")
                    rejected += 1
                }
            }
        }
        XCTAssertGreaterThan(rejected, 100)
        print("mutations behind valid checksums: \(rejected) rejected, \(accepted) accepted (still valid plans)")
    }

    func testImplausibleSizesAreRejectedNotTrapped() throws {
        var plan = try tinyPlan()
        // A conv whose weight count would overflow Int if multiplied out.
        for (s, step) in plan.steps.enumerated() {
            if case .conv2d(var g, let bias) = step.kernel {
                g.outChannels = 1 << 40
                g.kernelHeight = 1 << 30
                plan.steps[s].kernel = .conv2d(g, bias: bias)
                break
            }
        }
        XCTAssertThrowsError(try decodePlan(encodePlan(plan))) { e in
            XCTAssertEqual((e as? PlanFileError)?.kind, .invalidPlan, "\(e)")
            XCTAssertTrue("\(e)".contains("too large"), "\(e)")
        }
        var huge = try tinyPlan()
        huge.buffers[0].perSample = [1 << 31, 1 << 31, 4]
        XCTAssertThrowsError(try decodePlan(encodePlan(huge))) { e in XCTAssertTrue("\(e)".contains("too large"), "\(e)") }
        var batch = try tinyPlan()
        batch.maxBatch = 0
        XCTAssertThrowsError(try decodePlan(encodePlan(batch))) { e in XCTAssertTrue("\(e)".contains("maxBatch 0"), "\(e)") }
        var dangling = try tinyPlan()
        dangling.steps[0].inputs[0] = 999
        XCTAssertThrowsError(try decodePlan(encodePlan(dangling))) { e in
            XCTAssertEqual((e as? PlanFileError)?.kind, .invalidPlan)
            XCTAssertTrue("\(e)".contains("step 0"), "\(e)")
        }
    }

    func testUnknownSectionsAreSkipped() throws {
        // A newer minor version may add sections; this reader skips them.
        let bytes = encodePlan(try tinyPlan())
        let parm = try decodePlanFile(bytes).sections.first { $0.tag == "PARM" }!
        var extra = Array(bytes[0..<(parm.offset - 16)])
        let payload = Array("future".utf8)
        extra += Array("XTRA".utf8) + (0..<8).map { UInt8(truncatingIfNeeded: payload.count >> (8 * $0)) } + [0, 0, 0, 0] + payload
        while extra.count % 64 != 48 { extra.append(0) }
        extra += bytes[(parm.offset - 16)...]
        fixChecksums(&extra)
        let file = try decodePlanFile(extra)
        XCTAssertEqual(file.sections.map(\.tag), ["META", "BUFS", "SCHD", "XTRA", "PARM"])
        assertSamePlan(file.plan, try decodePlan(bytes))
    }

    func testMissingSectionIsNamed() throws {
        let bytes = encodePlan(try tinyPlan())
        let sections = try decodePlanFile(bytes).sections
        let bufs = sections.first { $0.tag == "BUFS" }!, schd = sections.first { $0.tag == "SCHD" }!
        // Drop BUFS: splice the file from BUFS' header to SCHD's header.
        var cut = Array(bytes[0..<(bufs.offset - 16)]) + bytes[(schd.offset - 16)...]
        fixChecksums(&cut)
        XCTAssertThrowsError(try decodePlan(cut)) { e in
            XCTAssertEqual((e as? PlanFileError)?.kind, .missingSection)
            XCTAssertTrue("\(e)".hasPrefix("section 'BUFS': required section missing"), "\(e)")
        }
    }

    func testUnknownKernelIsNamed() throws {
        let bytes = encodePlan(try tinyPlan())
        let schd = try decodePlanFile(bytes).sections.first { $0.tag == "SCHD" }!
        var payload = Array(bytes[schd.offset..<schd.offset + schd.length])
        let needle = Array("{\"conv2d\":".utf8)
        let at = try XCTUnwrap((0...(payload.count - needle.count)).first { Array(payload[$0..<$0 + needle.count]) == needle })
        payload[at + 6] = UInt8(ascii: "3")  // "conv3d", same length
        var changed = bytes
        changed.replaceSubrange(schd.offset..<schd.offset + schd.length, with: payload)
        fixChecksums(&changed)
        XCTAssertThrowsError(try decodePlan(changed)) { e in
            XCTAssertEqual((e as? PlanFileError)?.kind, .malformed)
            XCTAssertTrue("\(e)".hasPrefix("section 'SCHD' at offset \(schd.offset): steps[1].kernel:"), "\(e)")
            XCTAssertTrue("\(e)".contains("unknown kernel 'conv3d'"), "\(e)")
        }
    }

    func testJSONEscapesAndNonFiniteFloatsRoundTrip() throws {
        var plan = try tinyPlan()
        plan.metadata.classNames = ["tab\there", "ctl\u{1}", "emoji 😀", "quote\"back\\slash"]
        plan.metadata.probeErrors = ["inf": .infinity, "tiny": .leastNonzeroMagnitude, "neg": -0.0]
        // Only the metadata changes: the executor does not read it.
        let decoded = try decodePlan(encodePlan(plan))
        XCTAssertEqual(decoded.metadata.classNames, plan.metadata.classNames)
        XCTAssertEqual(decoded.metadata.probeErrors["inf"], .infinity)
        XCTAssertEqual(decoded.metadata.probeErrors["tiny"], .leastNonzeroMagnitude)
        XCTAssertEqual(decoded.metadata.probeErrors["neg"]?.sign, .minus)
    }

    func testWritePlanIsAtomic() throws {
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("m.plan").path
        let plan = try tinyPlan()
        try writePlan(plan, to: path)
        assertSamePlan(try readPlan(path: path), plan)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.plan"], "no temp file left")

        // An invalid plan is refused before anything is written; the old file stays.
        var bad = plan
        bad.outputs = [12345]
        XCTAssertThrowsError(try writePlan(bad, to: path)) { e in XCTAssertTrue("\(e)".hasPrefix(path + ": invalid plan"), "\(e)") }
        assertSamePlan(try readPlan(path: path), plan)
        // A missing directory is an I/O error and leaves nothing behind.
        XCTAssertThrowsError(try writePlan(plan, to: dir.appendingPathComponent("no/such/dir/m.plan").path)) { e in
            XCTAssertEqual((e as? PlanFileError)?.kind, .io)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.plan"])
    }
}
