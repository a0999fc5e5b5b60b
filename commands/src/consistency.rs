//! Consistency tokens: "partition:offset" of the last event a command wrote,
//! which a client passes as `consistentWith` to read its own write. Several
//! tokens (writes to several orders) are joined with commas.

/// The consistency token of an event position: "partition:offset".
pub fn consistency_token(partition: u32, offset: u64) -> String {
    format!("{partition}:{offset}")
}

/// Parses a list of consistency tokens joined with commas ("0:17,3:5"), as
/// a client that wrote to several orders passes them, into positions.
pub fn parse_consistency_tokens(tokens: &str) -> Option<Vec<(u32, u64)>> {
    tokens
        .split(',')
        .map(|t| parse_consistency_token(t.trim()))
        .collect()
}

/// Parses a consistency token back into (partition, offset).
pub fn parse_consistency_token(token: &str) -> Option<(u32, u64)> {
    let (partition, offset) = token.split_once(':')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_tokens_round_trip_and_reject_garbage() {
        assert_eq!(
            parse_consistency_token(&consistency_token(3, 42)),
            Some((3, 42))
        );
        for bad in ["", "3", "x:1", "1:-2", "1:2:3"] {
            assert_eq!(parse_consistency_token(bad), None, "{bad}");
        }
        assert_eq!(
            parse_consistency_tokens("0:17, 3:5"),
            Some(vec![(0, 17), (3, 5)])
        );
        assert_eq!(parse_consistency_tokens("0:17,x"), None);
    }
}
