//! `orderstore inspect`: an order's state at a time and the events that made
//! it, or what changed between two times, folded from the log itself; or a
//! flow's events under one correlation id, from the trace read model.
//! Readable tables for people, JSON for scripts.

use chrono::{DateTime, Utc};
use domain::envelope::format_time;
use domain::{Money, OrderEvent, OrderState};
use serde::Serialize;
use serde_json::{json, Value};

use crate::log_fold::{FoldedOrder, LoggedEvent};

/// The state of an order as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub payment_status: String,
    pub inventory_reserved: bool,
    pub items: usize,
    pub subtotal: String,
    pub tax: String,
    pub total: String,
    pub captured: String,
    pub refunded: String,
    pub currency: String,
    pub version: u64,
    pub placed_at: String,
    pub updated_at: String,
}

impl OrderView {
    pub fn of(state: &OrderState) -> Option<Self> {
        let order = state.order.as_ref()?;
        let money = |minor| Money::new(minor, order.currency).to_decimal_string();
        Some(Self {
            id: order.id.to_string(),
            customer_id: order.customer_id.to_string(),
            status: order.status.as_str().to_owned(),
            payment_status: order.payment_status().as_str().to_owned(),
            inventory_reserved: order.inventory_reserved,
            items: order.items.len(),
            subtotal: money(order.subtotal),
            tax: money(order.tax),
            total: money(order.total),
            captured: money(order.captured),
            refunded: money(order.refunded),
            currency: order.currency.to_string(),
            version: state.version,
            placed_at: format_time(&order.placed_at),
            updated_at: format_time(&order.updated_at),
        })
    }

    /// (field, value) pairs in display order.
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.clone()),
            ("customerId", self.customer_id.clone()),
            ("status", self.status.clone()),
            ("paymentStatus", self.payment_status.clone()),
            ("inventoryReserved", self.inventory_reserved.to_string()),
            ("items", self.items.to_string()),
            ("subtotal", format!("{} {}", self.subtotal, self.currency)),
            ("tax", format!("{} {}", self.tax, self.currency)),
            ("total", format!("{} {}", self.total, self.currency)),
            ("captured", format!("{} {}", self.captured, self.currency)),
            ("refunded", format!("{} {}", self.refunded, self.currency)),
            ("version", self.version.to_string()),
            ("placedAt", self.placed_at.clone()),
            ("updatedAt", self.updated_at.clone()),
        ]
    }
}

/// A one-line summary of an event's data.
pub fn summary(event: &OrderEvent) -> String {
    let money = |m: &Money| format!("{} {}", m.to_decimal_string(), m.currency);
    match event {
        OrderEvent::OrderPlaced(placed) => format!(
            "customer {}, {} item(s), total {}",
            placed.customer_id,
            placed.items.len(),
            money(&Money::new(placed.total, placed.currency))
        ),
        OrderEvent::PaymentConfirmed { payment_id, amount } => {
            format!("payment {payment_id} of {}", money(amount))
        }
        OrderEvent::InventoryReserved { items } => format!("{} item(s) reserved", items.len()),
        OrderEvent::OrderShipped {
            carrier,
            tracking_number,
        } => format!("shipped with {carrier} ({tracking_number})"),
        OrderEvent::OrderDelivered => "delivered".to_owned(),
        OrderEvent::OrderCancelled { reason } => format!("cancelled: {reason}"),
        OrderEvent::PaymentRefunded { amount, reason } => {
            format!("refunded {}: {reason}", money(amount))
        }
    }
}

fn event_row(logged: &LoggedEvent) -> [String; 6] {
    let e = &logged.event.envelope;
    [
        format_time(&e.time),
        logged.event.event.event_type().name().to_owned(),
        e.sequence.to_string(),
        format!("{}:{}", logged.partition, logged.offset),
        e.correlation_id.clone(),
        summary(&logged.event.event),
    ]
}

fn event_json(logged: &LoggedEvent) -> Value {
    let mut value = logged.event.to_cloudevent_json();
    value["partition"] = json!(logged.partition);
    value["offset"] = json!(logged.offset);
    value
}

/// A plain table: a header, a rule, and left-aligned columns.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    out += &line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

const EVENT_HEADER: [&str; 6] = [
    "time",
    "type",
    "seq",
    "position",
    "correlation id",
    "summary",
];

/// `inspect order <id> --at T` as a table.
pub fn order_text(order_id: &str, at: DateTime<Utc>, folded: &FoldedOrder) -> String {
    let mut out = String::new();
    match OrderView::of(&folded.state) {
        None => out += &format!("order {order_id} did not exist at {}\n", format_time(&at)),
        Some(view) => {
            out += &format!("order {order_id} at {}\n\n", format_time(&at));
            let rows: Vec<[String; 2]> = view
                .fields()
                .into_iter()
                .map(|(k, v)| [k.to_owned(), v])
                .collect();
            out += &table(["field", "value"], &rows);
        }
    }
    if !folded.events.is_empty() {
        out += "\nevents\n";
        let rows: Vec<[String; 6]> = folded.events.iter().map(event_row).collect();
        out += &table(EVENT_HEADER, &rows);
    }
    out
}

/// `inspect order <id> --at T --json`.
pub fn order_json(order_id: &str, at: DateTime<Utc>, folded: &FoldedOrder) -> Value {
    json!({
        "orderId": order_id,
        "at": format_time(&at),
        "state": OrderView::of(&folded.state),
        "events": folded.events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

/// The fields that differ between two states: (field, before, after).
pub fn changed_fields(before: &FoldedOrder, after: &FoldedOrder) -> Vec<(String, String, String)> {
    let fields = |f: &FoldedOrder| {
        OrderView::of(&f.state)
            .map(|v| v.fields())
            .unwrap_or_default()
    };
    let (old, new) = (fields(before), fields(after));
    let value = |list: &[(&'static str, String)], name: &str| {
        list.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "-".into())
    };
    let mut names: Vec<&str> = old.iter().chain(&new).map(|(k, _)| *k).collect();
    names.dedup();
    let mut seen = std::collections::BTreeSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(*n))
        .filter_map(|name| {
            let (a, b) = (value(&old, name), value(&new, name));
            (a != b).then(|| (name.to_owned(), a, b))
        })
        .collect()
}

/// The events after `before` up to `after` (both folds of the same order).
fn between<'a>(before: &FoldedOrder, after: &'a FoldedOrder) -> &'a [LoggedEvent] {
    &after.events[before.events.len().min(after.events.len())..]
}

/// `inspect diff <id> --from T1 --to T2` as a table.
pub fn diff_text(order_id: &str, before: &FoldedOrder, after: &FoldedOrder) -> String {
    let changes = changed_fields(before, after);
    let mut out = format!("order {order_id}: {} field(s) changed\n\n", changes.len());
    if !changes.is_empty() {
        let rows: Vec<[String; 3]> = changes.into_iter().map(|(f, a, b)| [f, a, b]).collect();
        out += &table(["field", "from", "to"], &rows);
    }
    let events = between(before, after);
    if !events.is_empty() {
        out += "\nevents in between\n";
        let rows: Vec<[String; 6]> = events.iter().map(event_row).collect();
        out += &table(EVENT_HEADER, &rows);
    }
    out
}

/// `inspect diff ... --json`.
pub fn diff_json(order_id: &str, before: &FoldedOrder, after: &FoldedOrder) -> Value {
    let changes: Vec<Value> = changed_fields(before, after)
        .into_iter()
        .map(|(field, from, to)| json!({ "field": field, "from": from, "to": to }))
        .collect();
    json!({
        "orderId": order_id,
        "changes": changes,
        "events": between(before, after).iter().map(event_json).collect::<Vec<_>>(),
    })
}

const TRACE_HEADER: [&str; 7] = [
    "time",
    "order",
    "type",
    "seq",
    "position",
    "causation id",
    "summary",
];

/// `inspect trace <correlation id>` as a table: the flow's events across
/// orders, in the flow's order.
pub fn trace_text(correlation_id: &str, at: DateTime<Utc>, events: &[LoggedEvent]) -> String {
    if events.is_empty() {
        return format!(
            "no event carries correlation id {correlation_id} at {}\n",
            format_time(&at)
        );
    }
    let orders: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e.event.envelope.subject.as_str())
        .collect();
    let mut out = format!(
        "correlation id {correlation_id} at {}: {} events across {} orders\n\n",
        format_time(&at),
        events.len(),
        orders.len()
    );
    let rows: Vec<[String; 7]> = events
        .iter()
        .map(|logged| {
            let e = &logged.event.envelope;
            [
                format_time(&e.time),
                e.subject.clone(),
                logged.event.event.event_type().name().to_owned(),
                e.sequence.to_string(),
                format!("{}:{}", logged.partition, logged.offset),
                e.causation_id.clone(),
                summary(&logged.event.event),
            ]
        })
        .collect();
    out += &table(TRACE_HEADER, &rows);
    out
}

/// `inspect trace <correlation id> --json`.
pub fn trace_json(correlation_id: &str, at: DateTime<Utc>, events: &[LoggedEvent]) -> Value {
    json!({
        "correlationId": correlation_id,
        "at": format_time(&at),
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    })
}
