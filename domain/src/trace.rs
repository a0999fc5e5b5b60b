//! W3C Trace Context (https://www.w3.org/TR/trace-context/): the
//! `traceparent` and `tracestate` a command arrives with, which travel onto
//! every event it causes as the CloudEvents distributed-tracing extension.
//! Parsing follows the spec's rules; ids for a fresh trace are given (this
//! crate generates nothing).

use serde::{Deserialize, Serialize};

/// A valid trace context: `traceparent` as received (or made fresh), and a
/// `tracestate` kept only when it is well-formed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// Why a `traceparent` is not one (the spec then starts a new trace).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traceparent {value:?} is invalid: {reason}")]
pub struct TraceparentError {
    pub value: String,
    pub reason: &'static str,
}

/// Most list members of a tracestate (the spec's limit).
const MAX_MEMBERS: usize = 32;

impl TraceContext {
    /// Reads the headers as the spec says: an invalid `traceparent` is an
    /// error (the caller starts a new trace); an invalid `tracestate` next
    /// to a valid `traceparent` is dropped, the `traceparent` kept.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, TraceparentError> {
        let traceparent = traceparent.trim_matches([' ', '\t']);
        check_traceparent(traceparent).map_err(|reason| TraceparentError {
            value: traceparent.to_owned(),
            reason,
        })?;
        Ok(Self {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate.and_then(valid_tracestate),
        })
    }

    /// A new trace, sampled, with these ids (zero ids, which the spec
    /// forbids, become 1).
    pub fn fresh(trace_id: u128, span_id: u64) -> Self {
        Self {
            traceparent: format!("00-{:032x}-{:016x}-01", trace_id.max(1), span_id.max(1)),
            tracestate: None,
        }
    }

    /// The 32 hex digits of the trace id, for log lines.
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_traceparent(value: &str) -> Result<(), &'static str> {
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return Err("shorter than version-traceid-parentid-flags");
    }
    let version = &value[..2];
    if !is_lower_hex(version) {
        return Err("the version is not two lowercase hex digits");
    }
    if version == "ff" {
        return Err("version ff is forbidden");
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return Err("the fields are not separated by dashes");
    }
    // Version 00 is exactly 55 characters; a later version may append
    // fields after another dash, which this reader ignores.
    if version == "00" && bytes.len() != 55 {
        return Err("version 00 has exactly four fields");
    }
    if bytes.len() > 55 && bytes[55] != b'-' {
        return Err("the flags are longer than two digits");
    }
    let (trace_id, parent_id, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags) {
        return Err("the ids and flags must be lowercase hex");
    }
    if trace_id.bytes().all(|b| b == b'0') {
        return Err("the trace id is all zeros");
    }
    if parent_id.bytes().all(|b| b == b'0') {
        return Err("the parent id is all zeros");
    }
    Ok(())
}

/// The tracestate as given (empty members removed), or None when any
/// member breaks the spec's grammar or there are too many.
fn valid_tracestate(value: &str) -> Option<String> {
    let members: Vec<&str> = value
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    if members.is_empty() || members.len() > MAX_MEMBERS {
        return None;
    }
    let mut keys = std::collections::HashSet::new();
    for member in &members {
        let (key, value) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(value) || !keys.insert(key) {
            return None;
        }
    }
    Some(members.join(","))
}

/// `key = simple-key / multi-tenant-key` (lowercase; `tenant@system`).
fn valid_key(key: &str) -> bool {
    let part = |text: &str, max: usize, first_digit_ok: bool| {
        let mut chars = text.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        text.len() <= max
            && (first.is_ascii_lowercase() || (first_digit_ok && first.is_ascii_digit()))
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '*' | '/')
            })
    };
    match key.split_once('@') {
        None => part(key, 256, false),
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
    }
}

/// Up to 256 printable ASCII characters but `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_is_read_as_it_came() {
        let trace =
            TraceContext::parse(VALID, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).unwrap();
        assert_eq!(trace.traceparent, VALID);
        assert_eq!(
            trace.tracestate.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_traceparent_breaking_any_rule_is_refused_with_the_rule() {
        for (bad, rule) in [
            ("", "shorter"),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                "shorter",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "ff",
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "lowercase",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "trace id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "parent id",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                "dashes",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "exactly",
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
                "flags",
            ),
        ] {
            let error = TraceContext::parse(bad, None).unwrap_err();
            assert!(error.reason.contains(rule), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert_eq!(TraceContext::parse(later, None).unwrap().traceparent, later);
    }

    #[test]
    fn an_invalid_tracestate_is_dropped_and_the_traceparent_kept() {
        for bad in [
            "UPPER=1",
            "novalue",
            "a=1,a=2",
            "k=has,comma",
            "k=a\ttab",
            "1starts=digit",
            &(0..33)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(","),
        ] {
            let trace = TraceContext::parse(VALID, Some(bad)).unwrap();
            assert_eq!(trace.tracestate, None, "{bad:?}");
            assert_eq!(trace.traceparent, VALID);
        }
        let tenant = TraceContext::parse(VALID, Some(" 9tenant@sys=x , ,b=2")).unwrap();
        assert_eq!(tenant.tracestate.as_deref(), Some("9tenant@sys=x,b=2"));
    }

    #[test]
    fn a_fresh_trace_is_valid_sampled_and_never_zero() {
        let fresh = TraceContext::fresh(0xabc, 0x12);
        assert_eq!(
            fresh.traceparent,
            "00-00000000000000000000000000000abc-0000000000000012-01"
        );
        let zero = TraceContext::fresh(0, 0);
        assert!(TraceContext::parse(&zero.traceparent, None).is_ok());
    }
}
