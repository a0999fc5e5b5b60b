//! Key to partition exactly as the Java client's default partitioner does:
//! `toPositive(murmur2(key)) % partitions`, so the embedded backend and Kafka
//! (`partitioner=murmur2_random`) place every order in the same partition.

/// The partition of `key` among `partitions` (which must be at least 1).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED);
    (hash & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2` (signed Java ints).
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (key, expected) in cases {
            let hash = murmur2::murmur2(key.as_bytes(), murmur2::KAFKA_SEED);
            assert_eq!(hash as i32, expected, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for n in 1..20 {
            let p = partition_for(b"order-123", n);
            assert!(p < n);
            assert_eq!(p, partition_for(b"order-123", n));
        }
    }
}
