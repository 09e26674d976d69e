// 2-d max and average pooling over [N, C, H, W]. Window (oh, ow) covers input rows
// oh*stride - padTop ..< +size and columns likewise; positions outside the input are padding
// and are skipped: they never win a max and are not counted by the average. Windows may
// overlap (stride < size) or hang over the edge; loops run over each window clipped to the
// input (`poolWindow`). The executor rejects geometries with a window entirely in padding; the
// kernels then write 0 for such a window.

/// Window (oh, ow) clipped to the input: the rows and columns of its in-bounds elements, empty
/// when it lies in the padding. Every kernel here loops over these, O(in-bounds elements)
/// whatever the window's size.
@inline(__always)
func poolWindow(oh: Int, ow: Int, _ g: PoolGeometry) -> (rows: Range<Int>, columns: Range<Int>) {
    let h0 = oh * g.stride - g.padTop, w0 = ow * g.stride - g.padLeft
    let top = max(h0, 0), left = max(w0, 0)
    return (top..<max(min(h0 + g.size, g.inHeight), top), left..<max(min(w0 + g.size, g.inWidth), left))
}

/// y = the maximum of each window's in-bounds elements.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func maxpoolForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, C, OH, OW)
    _ x: UnsafePointer<T>,          // (N, C, H, W)
    n: Int, _ g: PoolGeometry
) {
    for plane in 0..<(n * g.channels) {
        let xp = x + plane * g.inHeight * g.inWidth
        let yp = y + plane * g.outHeight * g.outWidth
        for oh in 0..<g.outHeight {
            for ow in 0..<g.outWidth {
                let at = maxpoolArgmax(xp, oh: oh, ow: ow, g)
                yp[oh * g.outWidth + ow] = at >= 0 ? xp[at] : 0
            }
        }
    }
}

/// The offset in the (H, W) plane of the FIRST maximum of window (oh, ow) in row-major scan
/// order (ties go to the earliest), or -1 if the window has no in-bounds element.
@inline(__always)
func maxpoolArgmax<T: BLASReal>(_ xp: UnsafePointer<T>, oh: Int, ow: Int, _ g: PoolGeometry) -> Int {
    var best = -1
    var bestValue: T = 0
    let window = poolWindow(oh: oh, ow: ow, g)
    for ih in window.rows {
        for iw in window.columns {
            let at = ih * g.inWidth + iw
            if best < 0 || xp[at] > bestValue { best = at; bestValue = xp[at] }
        }
    }
    return best
}

/// dx = dy routed to the first maximum of each window (overlapping windows accumulate).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func maxpoolBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (N, C, H, W)
    _ dy: UnsafePointer<T>,         // (N, C, OH, OW)
    _ x: UnsafePointer<T>,          // (N, C, H, W) the forward input
    n: Int, _ g: PoolGeometry
) {
    dx.update(repeating: 0, count: n * g.channels * g.inHeight * g.inWidth)
    for plane in 0..<(n * g.channels) {
        let xp = x + plane * g.inHeight * g.inWidth
        let dxp = dx + plane * g.inHeight * g.inWidth
        let dyp = dy + plane * g.outHeight * g.outWidth
        for oh in 0..<g.outHeight {
            for ow in 0..<g.outWidth {
                let at = maxpoolArgmax(xp, oh: oh, ow: ow, g)
                if at >= 0 { dxp[at] += dyp[oh * g.outWidth + ow] }
            }
        }
    }
}

/// y = the mean of each window's in-bounds elements.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func avgpoolForward<T: BLASReal>(
    _ y: UnsafeMutablePointer<T>,   // (N, C, OH, OW)
    _ x: UnsafePointer<T>,          // (N, C, H, W)
    n: Int, _ g: PoolGeometry
) {
    for plane in 0..<(n * g.channels) {
        let xp = x + plane * g.inHeight * g.inWidth
        let yp = y + plane * g.outHeight * g.outWidth
        for oh in 0..<g.outHeight {
            for ow in 0..<g.outWidth {
                let window = poolWindow(oh: oh, ow: ow, g)
                let count = window.rows.count * window.columns.count
                var sum: T = 0
                for ih in window.rows {
                    for iw in window.columns {
                        sum += xp[ih * g.inWidth + iw]
                    }
                }
                yp[oh * g.outWidth + ow] = count > 0 ? sum / T(count) : 0
            }
        }
    }
}

/// dx = dy / count spread over each window's in-bounds elements (overlaps accumulate).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func avgpoolBackward<T: BLASReal>(
    _ dx: UnsafeMutablePointer<T>,  // (N, C, H, W)
    _ dy: UnsafePointer<T>,         // (N, C, OH, OW)
    n: Int, _ g: PoolGeometry
) {
    dx.update(repeating: 0, count: n * g.channels * g.inHeight * g.inWidth)
    for plane in 0..<(n * g.channels) {
        let dxp = dx + plane * g.inHeight * g.inWidth
        let dyp = dy + plane * g.outHeight * g.outWidth
        for oh in 0..<g.outHeight {
            for ow in 0..<g.outWidth {
                let window = poolWindow(oh: oh, ow: ow, g)
                let count = window.rows.count * window.columns.count
                if count == 0 { continue }
                let share = dyp[oh * g.outWidth + ow] / T(count)
                for ih in window.rows {
                    for iw in window.columns {
                        dxp[ih * g.inWidth + iw] += share
                    }
                }
            }
        }
    }
}
