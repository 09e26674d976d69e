// swift-tools-version:6.0
// fergc — a dataflow-graph compiler with a static execution plan for facial-emotion CNNs.
// No Swift package dependencies: the system libraries are OpenBLAS and zlib (and libpng and TurboJPEG for photos).
import PackageDescription

let package = Package(
    name: "fergc",
    products: [
        .executable(name: "fergc", targets: ["fergc"]),
        .library(name: "Runtime", targets: ["Runtime"]),
        // The C API (Sources/CFergc/include/fergc.h) for programs that embed the runtime.
        .library(name: "fergc_runtime", type: .dynamic, targets: ["CFergc"]),
    ],
    targets: [
        // MARK: - System libraries
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]),
        .systemLibrary(
            name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]),

        // MARK: - Compiler
        .target(name: "GraphIR"),
        .target(name: "Frontend", dependencies: ["GraphIR"]),
        .target(name: "Passes", dependencies: ["GraphIR", "Runtime"]),

        // MARK: - Runtime (embeddable alone: depends on OpenBLAS and its own C kernels only)
        .target(name: "Runtime", dependencies: ["COpenBLAS", "CKernels"]),
        // The Float hot loops in C (SIMD versions chosen at load time, with plain C fallbacks),
        // the small-matrix sgemm and the worker threads of the parallel regions.
        .target(name: "CKernels", path: "Sources/CKernels"),
        // The C API over Runtime's embedding API; the header is for C callers, not for Swift.
        .target(name: "CFergc", dependencies: ["Runtime", "Vision"], exclude: ["include"]),

        // MARK: - Photos (beside the runtime, which stays embeddable alone)
        // Face detection (Haar cascades, OpenCV 4 semantics) and detect-and-classify over a
        // Session; the window scan in C.
        .target(name: "CVision", path: "Sources/CVision"),
        .target(name: "Vision", dependencies: ["CVision", "Runtime"]),
        // JPEG, PNG and PGM/PPM decoding into Vision's Image.
        .target(name: "ImageIO", dependencies: ["Vision", "Runtime", "CPNG", "CTurboJPEG"]),

        // MARK: - Support
        .target(name: "NumPyIO", dependencies: ["CZlib", "Runtime"]),
        // Orchestration over the compiler and the runtime: one-shot runs, (later) training.
        .target(name: "Training", dependencies: ["GraphIR", "Passes", "Runtime", "NumPyIO", "CZlib"]),

        // ONNX in and out: a hand-written protobuf reader/writer, plan -> ONNX, ONNX -> GraphIR.
        .target(name: "Interop", dependencies: ["GraphIR", "Runtime"]),

        // MARK: - Distributed training (Open MPI, loaded at run time: no build-time MPI)
        .target(name: "CMPIShim", path: "Sources/CMPIShim", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "Distributed", dependencies: ["CMPIShim", "Runtime", "Training"]),

        // MARK: - Tools
        .executableTarget(
            name: "fergc", dependencies: ["GraphIR", "Frontend", "Passes", "Runtime", "NumPyIO", "Training", "Interop", "Vision", "ImageIO", "Distributed"],
            path: "Tools/fergc"),

        // MARK: - Tests
        // What the test targets that run programs share (Foundation only).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "GraphIRTests", dependencies: ["GraphIR", "Frontend"]),
        .testTarget(name: "FrontendTests", dependencies: ["Frontend", "GraphIR"]),
        .testTarget(
            name: "PassesTests", dependencies: ["Passes", "Frontend", "GraphIR", "Runtime", "NumPyIO"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime"]),
        // The .plan format, the embedding and C APIs, and the inspect/explain/predict commands.
        .testTarget(
            name: "PlanFileTests", dependencies: ["Runtime", "Frontend", "Passes", "GraphIR", "CFergc", "fergc", "TestSupport"]),
        .testTarget(name: "NumPyIOTests", dependencies: ["NumPyIO"]),
        .testTarget(
            name: "ParityTests",
            dependencies: ["Training", "Passes", "Frontend", "GraphIR", "Runtime", "NumPyIO"],
            exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Passes", "GraphIR", "CZlib", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["fergc", "NumPyIO", "TestSupport"]),
        .testTarget(
            name: "ONNXTests",
            dependencies: ["Interop", "Frontend", "Passes", "GraphIR", "Runtime", "NumPyIO", "Training"]),
        // Image decoding, the cascade parser, detection against OpenCV's boxes, fuzzing, predict on photos.
        .testTarget(name: "VisionTests", dependencies: ["Vision", "ImageIO", "Runtime", "Training", "CZlib", "CFergc", "fergc", "TestSupport"]),
        // The paper's table: pretrained weights, frozen prefixes, ensembles, f16 plans, reproduce.
        .testTarget(
            name: "PaperTests", dependencies: ["Training", "Passes", "Frontend", "GraphIR", "Runtime", "NumPyIO", "fergc", "TestSupport"],
            exclude: ["Fixtures"],
            // Optimized even in debug builds: the direct-convolution reference of VGG16's blocks
            // 1-4 is 0.7 G multiply-adds per face, minutes unoptimized, a second optimized.
            swiftSettings: [.unsafeFlags(["-O"])]),
    ]
)
