//! The finance projection: per UTC day of event time x currency, orders
//! placed, gross, tax, captured, refunded and cancelled. Rows are partial
//! aggregates per source partition (day, currency, partition) so each row has
//! one source partition; reads merge the partitions as of T.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::{OrderEvent, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::store::{ProjectionStore, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

pub const TOTALS: &str = "finance";
pub const ORDER_CURRENCY: &str = "finance-order";

/// This projection's name: its directory, topics and API name.
pub const NAME: &str = "finance";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FinanceTotals {
    pub orders_placed: u64,
    pub gross: i64,
    pub tax: i64,
    pub captured: i64,
    pub refunded: i64,
    pub cancelled: u64,
}

/// Sums past the range of their integer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("finance totals overflow")]
pub struct Overflow;

impl FinanceTotals {
    /// Captured minus refunded.
    pub fn net(&self) -> Result<i64, Overflow> {
        self.captured.checked_sub(self.refunded).ok_or(Overflow)
    }

    /// Adds `other` to these totals, every sum checked.
    pub fn add(&mut self, other: &FinanceTotals) -> Result<(), Overflow> {
        let sum = |a: i64, b: i64| a.checked_add(b).ok_or(Overflow);
        let count = |a: u64, b: u64| a.checked_add(b).ok_or(Overflow);
        *self = FinanceTotals {
            orders_placed: count(self.orders_placed, other.orders_placed)?,
            gross: sum(self.gross, other.gross)?,
            tax: sum(self.tax, other.tax)?,
            captured: sum(self.captured, other.captured)?,
            refunded: sum(self.refunded, other.refunded)?,
            cancelled: count(self.cancelled, other.cancelled)?,
        };
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Finance;

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Projection for Finance {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        read: &ReadRow<'_>,
        event: &RecordedEvent,
        partition: u32,
        _offset: u64,
    ) -> Result<Vec<Change>, ApplyError> {
        let order_id = event.envelope.subject.as_str();
        let currency_key = RowKey::new(ORDER_CURRENCY, &[order_id]);
        let mut changes = Vec::new();
        let currency = match &event.event {
            OrderEvent::OrderPlaced(placed) => {
                let code = placed.currency.to_string();
                changes.push(Change::new(currency_key, code.clone().into_bytes()));
                code
            }
            OrderEvent::PaymentConfirmed { amount, .. }
            | OrderEvent::PaymentRefunded { amount, .. } => amount.currency.to_string(),
            _ => match read(&currency_key)? {
                Some(code) => String::from_utf8_lossy(&code).into_owned(),
                None => {
                    return Err(ApplyError::Rule(format!(
                        "{} for order {order_id}, which was never placed",
                        event.envelope.event_type
                    )))
                }
            },
        };
        let day = event.envelope.time.date_naive().to_string();
        let key = RowKey::new(TOTALS, &[&day, &currency, &partition.to_string()]);
        let mut totals: FinanceTotals = match read(&key)? {
            Some(value) => serde_json::from_slice(&value).map_err(corrupt)?,
            None => FinanceTotals::default(),
        };
        let change = match &event.event {
            OrderEvent::OrderPlaced(placed) => FinanceTotals {
                orders_placed: 1,
                gross: placed.total,
                tax: placed.tax,
                ..FinanceTotals::default()
            },
            OrderEvent::PaymentConfirmed { amount, .. } => FinanceTotals {
                captured: amount.minor,
                ..FinanceTotals::default()
            },
            OrderEvent::PaymentRefunded { amount, .. } => FinanceTotals {
                refunded: amount.minor,
                ..FinanceTotals::default()
            },
            OrderEvent::OrderCancelled { .. } => FinanceTotals {
                cancelled: 1,
                ..FinanceTotals::default()
            },
            _ => return Ok(changes),
        };
        totals
            .add(&change)
            .map_err(|e| ApplyError::Rule(format!("{day} {currency}: {e}")))?;
        let value = serde_json::to_vec(&totals).map_err(|e| ApplyError::Rule(e.to_string()))?;
        changes.push(Change::new(key, value));
        Ok(changes)
    }
}

/// Rows per (day, currency) for days in `from..=to`, as of `at`, merged over partitions.
pub fn report(
    store: &ProjectionStore,
    from: NaiveDate,
    to: NaiveDate,
    currency: Option<&str>,
    at: DateTime<Utc>,
) -> Result<BTreeMap<(NaiveDate, String), FinanceTotals>, StoreError> {
    let mut rows = BTreeMap::new();
    let mut day = from;
    while day <= to {
        let text = day.to_string();
        for key in store.keys_with_prefix(TOTALS, &[&text, ""])? {
            let Some(value) = store.row_as_of(&key, at)? else {
                continue;
            };
            let parts: Vec<&[u8]> = key.key.split(|b| *b == 0x1f).collect();
            let Some(code) = parts
                .get(1)
                .map(|c| String::from_utf8_lossy(c).into_owned())
            else {
                continue;
            };
            if currency.is_some_and(|c| c != code) {
                continue;
            }
            let totals: FinanceTotals = serde_json::from_slice(&value).map_err(corrupt)?;
            rows.entry((day, code))
                .or_insert_with(FinanceTotals::default)
                .add(&totals)
                .map_err(|e| StoreError::Corrupt(format!("finance {text}: {e}")))?;
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

    use super::{FinanceTotals, Overflow};

    #[test]
    fn totals_add_every_field_and_refuse_to_overflow() {
        let mut totals = FinanceTotals {
            orders_placed: 1,
            gross: 100,
            tax: 10,
            captured: 100,
            refunded: 30,
            cancelled: 0,
        };
        totals.add(&totals.clone()).unwrap();
        assert_eq!(
            (totals.orders_placed, totals.gross, totals.net()),
            (2, 200, Ok(140))
        );
        let huge = FinanceTotals {
            gross: i64::MAX,
            ..FinanceTotals::default()
        };
        let before = totals;
        assert_eq!(totals.add(&huge), Err(Overflow));
        assert_eq!(totals, before, "a refused sum changes nothing");
        let negative = FinanceTotals {
            captured: i64::MIN,
            refunded: 1,
            ..FinanceTotals::default()
        };
        assert_eq!(negative.net(), Err(Overflow));
    }
}
