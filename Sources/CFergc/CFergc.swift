// The C API (include/fergc.h) over the embedding API (Runtime's Model.swift), built as
// libfergc_runtime.so. Handles are retained Swift objects passed as opaque pointers; every entry
// point checks its pointers and turns Swift errors into a return code plus a message.

import Runtime
import Vision

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A loaded plan and the C strings handed out for it (freed with the handle).
final class PlanHandle {
    let model: LoadedPlan
    let name: UnsafeMutablePointer<CChar>
    let classNames: [UnsafeMutablePointer<CChar>]

    init(_ model: LoadedPlan) {
        self.model = model
        name = strdup(model.plan.name)
        classNames = model.classNames.map { strdup($0) }
    }

    deinit {
        free(name)
        for p in classNames { free(p) }
    }
}

final class SessionHandle {
    let session: Session
    init(_ session: Session) { self.session = session }
}

private func retained(_ object: AnyObject) -> OpaquePointer {
    OpaquePointer(Unmanaged.passRetained(object).toOpaque())
}

private func plan(_ p: OpaquePointer?) -> PlanHandle? {
    p.map { Unmanaged<PlanHandle>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

private func session(_ p: OpaquePointer?) -> SessionHandle? {
    p.map { Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

/// Writes `message` into err (NUL-terminated, cut at a character boundary to fit errlen).
private func report(_ message: String, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) {
    guard let err, errlen > 0 else { return }
    var bytes = Array(message.utf8)
    if bytes.count > errlen - 1 {
        bytes = Array(bytes[..<(errlen - 1)])
        while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }  // continuation bytes
        if let last = bytes.last, last >= 0xC0 { bytes.removeLast() }            // a dangling lead byte
    }
    for (i, b) in bytes.enumerated() { err[i] = CChar(bitPattern: b) }
    err[bytes.count] = 0
}

nonisolated(unsafe) private let versionString: UnsafeMutablePointer<CChar> = strdup(runtimeVersion)

@_cdecl("fergc_version")
public func fergc_version() -> UnsafePointer<CChar> { UnsafePointer(versionString) }

@_cdecl("fergc_plan_load")
public func fergc_plan_load(_ path: UnsafePointer<CChar>?, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> OpaquePointer? {
    guard let path else { report("fergc_plan_load: path is NULL", err, errlen); return nil }
    do {
        return retained(PlanHandle(try LoadedPlan(path: String(cString: path))))
    } catch {
        report(error.description, err, errlen)
        return nil
    }
}

@_cdecl("fergc_plan_load_memory")
public func fergc_plan_load_memory(_ bytes: UnsafeRawPointer?, _ length: Int, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> OpaquePointer? {
    guard let bytes else { report("fergc_plan_load_memory: bytes is NULL", err, errlen); return nil }
    guard length >= 0 else { report("fergc_plan_load_memory: length \(UInt(bitPattern: length)) is too large", err, errlen); return nil }
    do {
        return retained(PlanHandle(try LoadedPlan(bytes: Array(UnsafeRawBufferPointer(start: bytes, count: length)))))
    } catch {
        report(error.description, err, errlen)
        return nil
    }
}

@_cdecl("fergc_plan_free")
public func fergc_plan_free(_ p: OpaquePointer?) {
    guard let p else { return }
    Unmanaged<PlanHandle>.fromOpaque(UnsafeRawPointer(p)).release()
}

@_cdecl("fergc_plan_name")
public func fergc_plan_name(_ p: OpaquePointer?) -> UnsafePointer<CChar>? {
    plan(p).map { UnsafePointer($0.name) }
}

@_cdecl("fergc_plan_classes")
public func fergc_plan_classes(_ p: OpaquePointer?) -> Int32 {
    plan(p).map { Int32($0.model.classes) } ?? -1
}

@_cdecl("fergc_plan_class_name")
public func fergc_plan_class_name(_ p: OpaquePointer?, _ i: Int32) -> UnsafePointer<CChar>? {
    guard let h = plan(p), h.classNames.indices.contains(Int(i)) else { return nil }
    return UnsafePointer(h.classNames[Int(i)])
}

@_cdecl("fergc_plan_input_shape")
public func fergc_plan_input_shape(_ p: OpaquePointer?, _ dims: UnsafeMutablePointer<Int32>?, _ maxdims: Int32) -> Int32 {
    guard let h = plan(p) else { return -1 }
    let shape = h.model.inputShape
    if let dims {
        for (i, d) in shape.prefix(max(Int(maxdims), 0)).enumerated() { dims[i] = Int32(clamping: d) }
    }
    return Int32(shape.count)
}

@_cdecl("fergc_plan_input_size")
public func fergc_plan_input_size(_ p: OpaquePointer?) -> Int32 {
    plan(p).map { Int32(clamping: $0.model.inputElements) } ?? -1
}

@_cdecl("fergc_plan_input_scale")
public func fergc_plan_input_scale(_ p: OpaquePointer?) -> Float {
    plan(p)?.model.inputScale ?? 0
}

@_cdecl("fergc_plan_max_batch")
public func fergc_plan_max_batch(_ p: OpaquePointer?) -> Int32 {
    plan(p).map { Int32(clamping: $0.model.maxBatch) } ?? -1
}

@_cdecl("fergc_session_new")
public func fergc_session_new(_ p: OpaquePointer?) -> OpaquePointer? {
    fergc_session_new_err(p, nil, 0)
}

@_cdecl("fergc_session_new_err")
public func fergc_session_new_err(_ p: OpaquePointer?, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> OpaquePointer? {
    guard let h = plan(p) else { report("fergc_session_new: plan is NULL", err, errlen); return nil }
    do {
        return retained(SessionHandle(try Session(h.model)))
    } catch {
        report("fergc_session_new: \(error)", err, errlen)
        return nil
    }
}

@_cdecl("fergc_session_free")
public func fergc_session_free(_ p: OpaquePointer?) {
    guard let p else { return }
    Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(p)).release()
}

@_cdecl("fergc_predict")
public func fergc_predict(_ s: OpaquePointer?, _ images: UnsafePointer<Float>?, _ n: Int32,
                          _ probs: UnsafeMutablePointer<Float>?, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> Int32 {
    guard let h = session(s) else { report("fergc_predict: session is NULL", err, errlen); return -1 }
    guard let images, let probs else { report("fergc_predict: images or probs_out is NULL", err, errlen); return -1 }
    guard n >= 1 else { report("fergc_predict: n is \(n); expected at least 1", err, errlen); return -1 }
    do {
        try h.session.predict(images: images, count: Int(n), into: probs)
        return 0
    } catch {
        report("fergc_predict: \(error)", err, errlen)
        return -1
    }
}

@_cdecl("fergc_predict_u8")
public func fergc_predict_u8(_ s: OpaquePointer?, _ pixels: UnsafePointer<UInt8>?, _ n: Int32,
                             _ probs: UnsafeMutablePointer<Float>?, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> Int32 {
    guard let h = session(s) else { report("fergc_predict_u8: session is NULL", err, errlen); return -1 }
    guard let pixels, let probs else { report("fergc_predict_u8: pixels or probs_out is NULL", err, errlen); return -1 }
    guard n >= 1 else { report("fergc_predict_u8: n is \(n); expected at least 1", err, errlen); return -1 }
    let model = h.session.model
    let count = Int(n) * model.inputElements
    let scaled = (0..<count).map { Float(pixels[$0]) * model.inputScale }
    do {
        try scaled.withUnsafeBufferPointer { try h.session.predict(images: $0.baseAddress!, count: Int(n), into: probs) }
        return 0
    } catch {
        report("fergc_predict_u8: \(error)", err, errlen)
        return -1
    }
}

// MARK: - Detection

final class DetectorHandle {
    let detector: FaceDetector
    init(_ detector: FaceDetector) { self.detector = detector }
}

/// The C layout of fergc_box.
public struct fergc_box_c {
    public var x: Int32, y: Int32, width: Int32, height: Int32
}

@_cdecl("fergc_detector_load")
public func fergc_detector_load(_ path: UnsafePointer<CChar>?, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> OpaquePointer? {
    let p = path.map { String(cString: $0) } ?? FaceDetector.defaultCascadePath
    do {
        return retained(DetectorHandle(try FaceDetector(path: p)))
    } catch {
        report("fergc_detector_load: \(error.description)", err, errlen)
        return nil
    }
}

@_cdecl("fergc_detector_free")
public func fergc_detector_free(_ p: OpaquePointer?) {
    guard let p else { return }
    Unmanaged<DetectorHandle>.fromOpaque(UnsafeRawPointer(p)).release()
}

@_cdecl("fergc_detect_classify")
public func fergc_detect_classify(_ s: OpaquePointer?, _ d: OpaquePointer?, _ pixels: UnsafePointer<UInt8>?,
                                  _ width: Int32, _ height: Int32, _ stride: Int32, _ channels: Int32,
                                  _ boxes: UnsafeMutableRawPointer?, _ probs: UnsafeMutablePointer<Float>?, _ maxFaces: Int32,
                                  _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int) -> Int32 {
    let name = "fergc_detect_classify"
    guard let h = session(s) else { report("\(name): session is NULL", err, errlen); return -1 }
    guard let d else { report("\(name): detector is NULL", err, errlen); return -1 }
    let detector = Unmanaged<DetectorHandle>.fromOpaque(UnsafeRawPointer(d)).takeUnretainedValue().detector
    guard let pixels else { report("\(name): pixels is NULL", err, errlen); return -1 }
    guard channels == 1 || channels == 3 else { report("\(name): channels is \(channels); expected 1 (gray) or 3 (RGB)", err, errlen); return -1 }
    guard width > 0, height > 0, Int(stride) >= Int(width) * Int(channels) else {
        report("\(name): bad geometry \(width)x\(height), stride \(stride) for \(channels) channel(s)", err, errlen); return -1
    }
    guard maxFaces >= 0, maxFaces == 0 || (boxes != nil && probs != nil) else {
        report("\(name): boxes or probs is NULL with max_faces \(maxFaces)", err, errlen); return -1
    }
    do {
        let faces: [FaceResult]
        if channels == 3 {
            faces = try h.session.detectAndClassify(rgb: pixels, width: Int(width), height: Int(height), stride: Int(stride), detector: detector)
        } else {
            faces = try h.session.detectAndClassify(GrayView(pixels: pixels, width: Int(width), height: Int(height), stride: Int(stride)), detector: detector)
        }
        let k = h.session.model.classes
        let b = boxes?.assumingMemoryBound(to: fergc_box_c.self)
        for (i, f) in faces.prefix(Int(maxFaces)).enumerated() {
            b![i] = fergc_box_c(x: Int32(f.box.x), y: Int32(f.box.y), width: Int32(f.box.width), height: Int32(f.box.height))
            for j in 0..<k { probs![i * k + j] = f.probabilities[j] }
        }
        return Int32(clamping: faces.count)
    } catch {
        report("\(name): \(error)", err, errlen)
        return -1
    }
}
