//! Identifiers: order, customer and command ids, validated once at the edge
//! of the domain. Ids are given to the domain, never generated in it.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} {value:?} is invalid: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |reason| IdError {
        kind,
        value: value.chars().take(MAX_ID_LEN + 8).collect(),
        reason,
    };
    if value.is_empty() {
        return Err(fail("must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(fail("must be at most 128 bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@');
    if !value.chars().all(allowed) {
        return Err(fail("may contain only ASCII letters, digits and - _ . : @"));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id_type!(
    /// The id of one order; also the Kafka record key and CloudEvents subject.
    OrderId,
    "order id"
);
id_type!(
    /// The id of a customer.
    CustomerId,
    "customer id"
);
id_type!(
    /// The id of a command: the client's idempotency key, or one given by the API.
    CommandId,
    "command id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_readable_ids_are_accepted() {
        assert!(OrderId::parse("0b0c6b1e-56a4-4c47-a0c5-6f2a3d3f7f10").is_ok());
        assert!(CustomerId::parse("cust_42").is_ok());
        assert!(CommandId::parse("client:retry.1@x").is_ok());
    }

    #[test]
    fn empty_long_and_odd_ids_are_refused() {
        assert_eq!(OrderId::parse("").unwrap_err().reason, "must not be empty");
        assert!(OrderId::parse("x".repeat(129)).is_err());
        assert!(OrderId::parse("a b").is_err());
        assert!(OrderId::parse("a/b").is_err());
        assert!(OrderId::parse("é").is_err());
    }
}
