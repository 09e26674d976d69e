// Tiny files whose headers state huge images (found by the jpeg fuzz target: an 87-byte
// progressive JPEG stating 19216x9740 pixels made decodeJPEG zero-fill 561 MB before the
// decoder saw the data end, and a well-formed 252-byte one decoded to that size): refused
// before the image is allocated, with an error saying so.

import CZlib
import ImageIO
import XCTest

final class ImageBombTests: XCTestCase {
    func testTinyJPEGStatingAHugeImageIsRefusedBeforeAllocating() throws {
        let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded:
            "/9j/4AAyMjIyNDUyR4wyNzIyMjIyMjIyMjIyMjIyMnIyMjA2ODgxOTkwMDAxMDM5NzU2Mzc1/8IAEQgmDEsQAwERAAIRAQMRAf/aAAwDAQACEAPI1QDZ")))
        XCTAssertEqual(bytes.count, 87)
        // Now refused for its pixels per byte (see below); stating 1000x1000 instead (11,494
        // pixels a byte), its data is decoded at 1/8 scale and found truncated first.
        XCTAssertThrowsError(try ImageIO.decode(bytes, path: "bomb.jpg")) { e in
            XCTAssertTrue("\(e)".contains("more than 4096 a byte"), "\(e)")
        }
        var smaller = bytes
        let sof = try XCTUnwrap((0..<smaller.count - 1).first { smaller[$0] == 0xFF && smaller[$0 + 1] == 0xC2 })
        smaller.replaceSubrange(sof + 5..<sof + 9, with: [0x03, 0xE8, 0x03, 0xE8])
        XCTAssertThrowsError(try ImageIO.decode(smaller, path: "bomb.jpg")) { e in
            XCTAssertTrue("\(e)".hasPrefix("bomb.jpg: cannot decode the JPEG"), "\(e)")
            XCTAssertTrue("\(e)".contains("1000x1000 pixels were not allocated"), "\(e)")
        }
    }

    /// A well-formed 252-byte progressive JPEG (found by the fuzz target after the fix above)
    /// that decodes to 19216x9740: refused for its pixels per byte, not decoded.
    func testWellFormedTinyJPEGOfAHugeImageIsRefused() throws {
        let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded:
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wgARCCYMSxADAREAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAABQb/xAAYAQACAwAAAAAAAAAAAAAAAAAEBQECBv/aAAwDAQACEAMQAAABnA4Vo7UDxTBJAf/Z")))
        XCTAssertEqual(bytes.count, 252)
        XCTAssertThrowsError(try ImageIO.decode(bytes, path: "flat.jpg")) { e in
            XCTAssertEqual("\(e)", "flat.jpg: a 252-byte JPEG stating 19216x9740 pixels (more than 4096 a byte): not a photo fergc reads")
        }
    }

    /// A PNG chunk: length, type, data, CRC-32 of type and data.
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = UInt32(body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) })
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        return be(UInt32(data.count)) + body + be(crc)
    }

    func testTinyPNGStatingAHugeImageIsRefusedBeforeAllocating() throws {
        func png(width: UInt32, height: UInt32) -> [UInt8] {
            func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
            // 8-bit RGB, and an IDAT of a few zero bytes.
            return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", be(width) + be(height) + [8, 2, 0, 0, 0])
                + chunk("IDAT", [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]) + chunk("IEND", [])
        }
        let bomb = png(width: 30000, height: 8000)
        XCTAssertThrowsError(try ImageIO.decode(bomb, path: "bomb.png")) { e in
            XCTAssertEqual("\(e)", "bomb.png: truncated PNG: \(bomb.count) bytes cannot hold a 30000x8000 image")
        }
        // A 1x1 image of the same bytes is not refused for its size (its data is another matter).
        XCTAssertThrowsError(try ImageIO.decode(png(width: 1, height: 1), path: "one.png")) { e in
            XCTAssertFalse("\(e)".contains("cannot hold"), "\(e)")
        }
    }
}
