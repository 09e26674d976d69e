// Preprocessing ops: per-image transforms of a model's input, the techniques of the paper's
// Figure 12 (docs/graph-language.md gives each one's formula). They are forward-only: no
// gradient flows through them, so they belong in front of the model, on the input.
//
// Pixels: each op reads an image plane [H, W] of the input f32[N, C, H, W] (every channel on its
// own) as pixel values on the 0..255 scale of the raw face, so a model using them must feed raw
// pixels (`input_scale = 1`, which the frontend checks) and scale after the op if it wants to.
// The histogram ops (equalize_local, equalize_hist, clahe, threshold yen/isodata) read each
// pixel as the 8-bit level clamp(round(x), 0, 255); the others use the float values as they are.

/// How `threshold` picks its level t; the output is the mask x > t.
public enum ThresholdMethod: String, Hashable, Sendable, CaseIterable {
    /// Yen's maximum-correlation criterion over the 8-bit histogram.
    case yen
    /// Ridler-Calvard iterative intermeans (ISODATA) over the 8-bit histogram.
    case isodata
    /// The image's mean.
    case mean
}

public enum Preprocess: Hashable, Sendable {
    /// scikit-image `filters.rank.equalize` with a disk footprint of this radius.
    case equalizeLocal(radius: Int)
    /// scikit-image `exposure.equalize_hist` (256 bins): the image's cumulative histogram, 0..1.
    case equalizeHist
    /// scikit-image `exposure.equalize_adapthist` (CLAHE) with this clip limit, 8x8 tiles.
    case clahe(clip: Double)
    /// OpenCV `normalize(NORM_MINMAX, alpha=0, beta=1)`: (x - min) / (max - min).
    case normalizeMinmax
    /// Gradient magnitudes of x/255, scikit-image's kernels, borders and scaling.
    case sobel, scharr, prewitt, roberts
    /// A 0/1 mask: x > t.
    case threshold(ThresholdMethod)
    /// (x - mean) / std over the image (the population std); 0 where the image is constant.
    case standardize
    /// Toward zero, as numpy's cast of a float into an integer array does.
    case truncate

    /// Every name in the graph language.
    public static let names = [
        "equalize_local", "equalize_hist", "clahe", "normalize_minmax", "sobel", "scharr", "prewitt",
        "roberts", "threshold", "standardize", "truncate",
    ]

    /// Largest `equalize_local` radius: a footprint wider than any sensible image.
    public static let maxRadius = 1024

    public var name: String {
        switch self {
        case .equalizeLocal: return "equalize_local"
        case .equalizeHist: return "equalize_hist"
        case .clahe: return "clahe"
        case .normalizeMinmax: return "normalize_minmax"
        case .sobel: return "sobel"
        case .scharr: return "scharr"
        case .prewitt: return "prewitt"
        case .roberts: return "roberts"
        case .threshold: return "threshold"
        case .standardize: return "standardize"
        case .truncate: return "truncate"
        }
    }

    public var attributes: [(String, Attribute)] {
        switch self {
        case .equalizeLocal(let r): return [("radius", .int(r))]
        case .clahe(let clip): return [("clip", .float(clip))]
        case .threshold(let m): return [("method", .symbol(m.rawValue))]
        case .equalizeHist, .normalizeMinmax, .sobel, .scharr, .prewitt, .roberts, .standardize, .truncate:
            return []
        }
    }

    /// Reads the op `name` (one of `names`) from its attributes, with the documented defaults:
    /// radius 30 (the paper's), clip 0.01 (scikit-image's); threshold's method is required.
    static func read(_ name: String, _ r: inout AttributeReader) throws(AttributeError) -> Preprocess? {
        switch name {
        case "equalize_local":
            let radius = try r.int("radius", default: 30)
            guard radius >= 1, radius <= maxRadius else {
                throw AttributeError(kind: .invalidValue(name: "radius", message: "must be in 1...\(maxRadius), got \(radius)"))
            }
            return .equalizeLocal(radius: radius)
        case "equalize_hist": return .equalizeHist
        case "clahe":
            let clip = try r.double("clip", default: 0.01)
            guard clip >= 0, clip <= 1 else {
                throw AttributeError(kind: .invalidValue(name: "clip", message: "must be in [0, 1] (0: no limit), got \(clip)"))
            }
            return .clahe(clip: clip)
        case "normalize_minmax": return .normalizeMinmax
        case "sobel": return .sobel
        case "scharr": return .scharr
        case "prewitt": return .prewitt
        case "roberts": return .roberts
        case "threshold": return .threshold(try r.choice("method"))
        case "standardize": return .standardize
        case "truncate": return .truncate
        default: return nil
        }
    }

    /// Whether the op's result depends on the pixel scale (0..255): every one but truncate,
    /// standardize and normalize_minmax, which give the same on any scale.
    public var readsPixelScale: Bool {
        switch self {
        case .truncate, .standardize, .normalizeMinmax: return false
        case .equalizeLocal, .equalizeHist, .clahe, .sobel, .scharr, .prewitt, .roberts, .threshold: return true
        }
    }
}

extension Op {
    /// The name a summary table shows: the op's name, with its attributes for a preprocessing
    /// op (`threshold(method=yen)`), whose name alone does not say what it computes.
    public var summaryName: String {
        guard case .preprocess(let p) = self, !p.attributes.isEmpty else { return name }
        return name + "(" + p.attributes.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") + ")"
    }
}
