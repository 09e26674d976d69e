// fergc re-executes itself once with OPENBLAS_CORETYPE set when OpenBLAS fell back to its SSE3
// kernels on a CPU with AVX2 or AVX-512 (Runtime/BLASCore.swift: the kernels are chosen when
// the library loads, before any of fergc's code runs). Not when the user set
// OPENBLAS_CORETYPE (their choice stands), nor a second time (FERGC_BLAS_REEXEC).
import Foundation
import Runtime

func useBetterOpenBLASCore() {
    let env = ProcessInfo.processInfo.environment
    guard env["OPENBLAS_CORETYPE"] == nil, env["FERGC_BLAS_REEXEC"] == nil, let core = betterOpenBLASCore() else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    setenv("FERGC_BLAS_REEXEC", "1", 1)
    let argv = CommandLine.unsafeArgv
    execv("/proc/self/exe", argv)
    // execv returned: it failed; carry on with the kernels OpenBLAS chose.
    unsetenv("OPENBLAS_CORETYPE")
}
