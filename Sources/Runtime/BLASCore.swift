// Which OpenBLAS kernels run. Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels by the
// CPU's family and model when the library loads; a model it does not know falls back to
// "Prescott", its SSE3 kernels. On the project's Xeon with AVX-512 (family 6, model 207) that
// is what happened: every OpenBLAS call (the weight gradients of the convolutions, the dense
// layers, the direct convolutions) ran SSE3 code, the 1024^3 sgemm at 11-26 GFLOP/s against
// 90-102 with OPENBLAS_CORETYPE=Cooperlake in the same minutes (a busy machine), and
// VGG16's 256->512 weight gradient took 171-190 against 80-82 ms.
//
// The kernels can only be chosen before the library loads (OPENBLAS_CORETYPE, read by its
// constructor), so the runtime can only say what it would choose; `fergc` sets the variable
// and re-executes itself (Tools/fergc/BLASCore.swift), and an embedder sets it in the
// environment of its process.
import CKernels
import COpenBLAS

/// The core type whose kernels OpenBLAS runs in this process ("Prescott", "Haswell", ...).
public func openBLASCoreName() -> String {
    guard let name = openblas_get_corename() else { return "unknown" }
    return String(cString: name)
}

/// The OPENBLAS_CORETYPE that would give this process faster kernels, or nil when OpenBLAS
/// already runs a suitable core: set only when OpenBLAS fell back to its generic "Prescott"
/// kernels (a CPU model it does not know) while the CPU has AVX2 + FMA or AVX-512. A core
/// OpenBLAS chose by model (e.g. "Zen", "Haswell", "SkylakeX") is left alone.
public func betterOpenBLASCore() -> String? {
    let current = openBLASCoreName().lowercased()
    guard current == "prescott" || current == "core2" || current == "unknown" else { return nil }
    guard let best = fk_best_blas_core() else { return nil }
    return String(cString: best)
}
