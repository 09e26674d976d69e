// Tiny files whose headers state huge images (found by the jpeg fuzz target: an 87-byte
// progressive JPEG stating 19216x9740 pixels made decodeJPEG zero-fill 561 MB before the
// decoder saw the data end): refused before the image is allocated, with an error saying so.

import CZlib
import ImageIO
import XCTest

final class ImageBombTests: XCTestCase {
    func testTinyJPEGStatingAHugeImageIsRefusedBeforeAllocating() throws {
        let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded:
            "/9j/4AAyMjIyNDUyR4wyNzIyMjIyMjIyMjIyMjIyMnIyMjA2ODgxOTkwMDAxMDM5NzU2Mzc1/8IAEQgmDEsQAwERAAIRAQMRAf/aAAwDAQACEAPI1QDZ")))
        XCTAssertEqual(bytes.count, 87)
        XCTAssertThrowsError(try ImageIO.decode(bytes, path: "bomb.jpg")) { e in
            XCTAssertTrue("\(e)".hasPrefix("bomb.jpg: cannot decode the JPEG"), "\(e)")
            XCTAssertTrue("\(e)".contains("19216x9740 pixels were not allocated"), "\(e)")
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
