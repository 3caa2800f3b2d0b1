import RdKafka

/// A consumer delegate that keeps everything it is told, for tests to wait on and inspect.
///
/// By default it stores the offset of every record it receives (so that a commit commits them) and commits
/// synchronously before partitions are revoked. Set ``storesOffsets`` to `false` to store nothing.
public final class RecordCollector: KafkaConsumerDelegate {
    /// Everything the consumer reported so far.
    public struct Log: Sendable, CustomStringConvertible {
        /// Records in the order they arrived.
        public var records: [KafkaRecord] = []
        /// The assignment as the delegate was told about it.
        public var assignment: Set<TopicPartition> = []
        /// Every revocation, in order: the partitions, and whether they were still assigned when announced.
        public var revocations: [(partitions: [TopicPartition], stillAssigned: Bool)] = []
        /// Partitions lost without a revocation.
        public var lost: [TopicPartition] = []
        /// Errors the consumer reported.
        public var errors: [KafkaError] = []
        /// How many holds ran out (see ``KafkaConsumerControl/hold(until:)``).
        public var expiredHolds = 0

        /// Records of one partition, in the order they arrived.
        public func records(of partition: TopicPartition) -> [KafkaRecord] {
            self.records.filter { $0.topicPartition == partition }
        }

        public var description: String {
            "\(self.records.count) records, assignment \(self.assignment.sorted { $0.description < $1.description }), "
                + "\(self.revocations.count) revocations, \(self.errors.count) errors"
        }
    }

    /// What the consumer reported; wait on it with ``AwaitableState/wait(for:timeout:until:)``.
    public let log = AwaitableState(Log())
    /// Whether each record's offset is stored when it arrives.
    public let storesOffsets: Bool
    /// Creates a collector.
    public init(storesOffsets: Bool = true) {
        self.storesOffsets = storesOffsets
    }

    public func consumer(_ control: KafkaConsumerControl, didReceive records: [KafkaRecord]) {
        if self.storesOffsets {
            var next: [TopicPartition: Int64] = [:]
            for record in records {
                next[record.topicPartition] = record.offset + 1
            }
            do {
                try control.store(next.map { TopicPartitionOffset($0.key, offset: $0.value) })
            } catch let error as KafkaError {
                self.log.update { $0.errors.append(error) }
            } catch {}
        }
        self.log.update { $0.records.append(contentsOf: records) }
    }

    public func consumer(_ control: KafkaConsumerControl, didAssign partitions: [TopicPartition]) {
        self.log.update { $0.assignment.formUnion(partitions) }
    }

    public func consumer(_ control: KafkaConsumerControl, willRevoke partitions: [TopicPartition]) {
        let stillAssigned = Set(partitions).isSubset(of: control.assignment)
        do {
            try control.commit()
        } catch let error as KafkaError {
            self.log.update { $0.errors.append(error) }
        } catch {}
        self.log.update { log in
            log.revocations.append((partitions, stillAssigned))
            log.assignment.subtract(partitions)
        }
    }

    public func consumer(_ control: KafkaConsumerControl, didLose partitions: [TopicPartition]) {
        self.log.update { log in
            log.lost.append(contentsOf: partitions)
            log.assignment.subtract(partitions)
        }
    }

    public func consumerHoldDidExpire(_ control: KafkaConsumerControl) {
        self.log.update { $0.expiredHolds += 1 }
    }

    public func consumer(_ control: KafkaConsumerControl, didFail error: KafkaError) {
        self.log.update { $0.errors.append(error) }
    }
}
