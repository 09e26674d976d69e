// swift-tools-version:6.0
// A program that embeds the fergc runtime: it depends on the Runtime product alone (no
// compiler, no Foundation) and classifies a face with a compiled .plan.
//
//   swift build --package-path Examples/swift-embed
//   .build/debug/classify-embed model.plan [face.pgm]
import PackageDescription

let package = Package(
    name: "swift-embed",
    dependencies: [
        // The fergc repository (two levels up); its package is named "fergc".
        .package(name: "fergc", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "classify-embed",
            dependencies: [.product(name: "Runtime", package: "fergc")]),
    ]
)
