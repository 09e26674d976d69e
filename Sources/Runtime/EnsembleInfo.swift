// What an ensemble plan (`fergc ensemble`) says about its members. Its output is the weighted
// mean of the members' probabilities, so it is already a probability vector.

public struct EnsembleInfo: Sendable, Codable, Equatable {
    public struct Member: Sendable, Codable, Equatable {
        public var name: String
        /// The prefix of the member's buffers and parameters in the merged plan ("m1.").
        public var prefix: String
        /// Normalized: the weights sum to 1.
        public var weight: Double
        public var sourceHash: String
        public var training: [String: String]
        public init(name: String, prefix: String, weight: Double, sourceHash: String, training: [String: String]) {
            self.name = name
            self.prefix = prefix
            self.weight = weight
            self.sourceHash = sourceHash
            self.training = training
        }
    }
    public var members: [Member]
    public init(members: [Member]) { self.members = members }
}
