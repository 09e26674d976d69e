// A training plan's frozen prefix (the `frozen-prefix` pass): its first `steps` steps compute,
// from the image input alone and weights nothing updates, the one buffer `output` that the rest
// of the step reads. A trainer may compute that buffer once per image and, on later epochs,
// write it and run only `steps..<plan.steps.count` (`Executor.run(batch:steps:)`).

public struct FrozenPrefixInfo: Sendable, Codable, Equatable {
    /// The number of leading steps in the prefix.
    public var steps: Int
    /// The image input the prefix reads.
    public var input: String
    /// The buffer it hands to the rest of the step.
    public var output: String
    public var outputPerSample: [Int]
    /// The frozen parameters it reads.
    public var frozenParameters: [String]

    public init(steps: Int, input: String, output: String, outputPerSample: [Int], frozenParameters: [String]) {
        self.steps = steps
        self.input = input
        self.output = output
        self.outputPerSample = outputPerSample
        self.frozenParameters = frozenParameters
    }

    public var outputElementsPerSample: Int { outputPerSample.reduce(1, *) }
}
