//! Field checks shared by the command handlers. Each failure names the
//! input field as the client sent it (GraphQL camelCase).

use crate::money::{Currency, Money, MoneyError};
use crate::order::{Rejection, MAX_TEXT_LEN};

/// Free text: not blank, at most MAX_TEXT_LEN bytes, no control characters.
pub(crate) fn text(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::invalid(field, "must not be blank"));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(Rejection::invalid(
            field,
            format!("must be at most {MAX_TEXT_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A decimal amount in `currency`; negative amounts are refused.
pub(crate) fn amount(field: &str, value: &str, currency: Currency) -> Result<Money, Rejection> {
    let money = Money::parse(value, currency).map_err(|e| money_error(field, e))?;
    if money.minor < 0 {
        return Err(Rejection::invalid(field, "must not be negative"));
    }
    Ok(money)
}

pub(crate) fn money_error(field: &str, error: MoneyError) -> Rejection {
    Rejection::invalid(field, error.to_string())
}
