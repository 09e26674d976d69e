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
        /// The member plan's passes and test-time augmentation, for `fergc ensemble --member` to
        /// give back (nil in ensembles merged before they were kept).
        public var passes: [String]?
        public var tta: String?
        public init(name: String, prefix: String, weight: Double, sourceHash: String, training: [String: String],
                    passes: [String]? = nil, tta: String? = nil) {
            self.name = name
            self.prefix = prefix
            self.weight = weight
            self.sourceHash = sourceHash
            self.training = training
            self.passes = passes
            self.tta = tta
        }
    }
    public var members: [Member]
    public init(members: [Member]) { self.members = members }
}
