//! Queries: orders (folded from the history read model, as of any time),
//! histories, customers, finance, projection status and dead letters.

use std::sync::Arc;

use async_graphql::{Context, Object, Result, ID};
use chrono::{DateTime, Utc};
use domain::Currency;
use projections::{customer, finance, history, trace};

use crate::error::ApiError;
use crate::schema::customer::Customer;
use crate::schema::inputs;
use crate::schema::inputs::{at, page_size};
use crate::schema::types::*;
use crate::state::{require_admin, AppState};

/// Longest finance range, in days.
pub const MAX_FINANCE_DAYS: i64 = 366;

#[derive(Debug, Default)]
pub struct Query;

#[Object]
impl Query {
    /// Current state, or the state as of `asOf` (all events with time <= asOf).
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<DateTime<Utc>>,
        consistent_with: Option<String>,
        #[graphql(
            desc = "Read this generation of the read model instead of the served one (a frozen `--until` build or a kept previous one)."
        )]
        generation: Option<i32>,
    ) -> Result<Option<Order>> {
        let state = ctx.data::<Arc<AppState>>()?;
        let order_id =
            inputs::order_id(&id).map_err(|_| ApiError::invalid("id", "not a valid order id"))?;
        let history = state
            .read_model(history::NAME, consistent_with.as_deref(), generation)
            .await?;
        let at = at(as_of);
        let Some((order, version)) = history::order_as_of(&history.store, order_id.as_str(), at)
            .map_err(ApiError::internal)?
        else {
            return Ok(None);
        };
        Ok(Some(Order::new(
            &order,
            version,
            OrderEvents {
                history,
                at,
                version,
            },
        )))
    }

    /// Events of one order, oldest first.
    async fn order_history(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = 100)] first: Option<i32>,
        after: Option<String>,
        #[graphql(
            desc = "Read this generation of the history read model instead of the served one."
        )]
        generation: Option<i32>,
    ) -> Result<EventConnection> {
        let state = ctx.data::<Arc<AppState>>()?;
        let order_id =
            inputs::order_id(&id).map_err(|_| ApiError::invalid("id", "not a valid order id"))?;
        let first = page_size("first", first, 100)?;
        let after: u64 = match after {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| ApiError::invalid("after", "not a cursor from this connection"))?,
            None => 0,
        };
        let history = state.read_model(history::NAME, None, generation).await?;
        let entries = history::events(&history.store, order_id.as_str(), DateTime::<Utc>::MAX_UTC)
            .map_err(ApiError::internal)?;
        let folded = history::fold(&entries).map_err(ApiError::internal)?;
        let mut edges = Vec::new();
        let mut remaining = folded
            .events
            .iter()
            .filter(|(e, _, _)| e.envelope.sequence > after)
            .peekable();
        while edges.len() < first {
            let Some((event, partition, offset)) = remaining.next() else {
                break;
            };
            edges.push(EventEdge {
                cursor: event.envelope.sequence.to_string(),
                node: Event::from_recorded(event, *partition, *offset),
            });
        }
        let page_info = PageInfo {
            has_next_page: remaining.peek().is_some(),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        Ok(EventConnection { edges, page_info })
    }

    /// Every event carrying this correlation id, across orders, in
    /// event-time order (ties: partition, then offset).
    async fn trace(
        &self,
        ctx: &Context<'_>,
        correlation_id: String,
        as_of: Option<DateTime<Utc>>,
        #[graphql(default = 100)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<EventConnection> {
        let state = ctx.data::<Arc<AppState>>()?;
        let correlation_id = inputs::correlation_id("correlationId", &correlation_id)?;
        let first = page_size("first", first, 100)?;
        if after.as_deref().is_some_and(|a| !trace::is_cursor(a)) {
            return Err(ApiError::invalid("after", "not a cursor from this connection").into());
        }
        let trace = state.read_model(trace::NAME, None, None).await?;
        let page = trace::events(
            &trace.store,
            &correlation_id,
            at(as_of),
            after.as_deref(),
            first,
        )
        .map_err(ApiError::internal)?;
        let edges: Vec<EventEdge> = page
            .events
            .iter()
            .map(|(cursor, event, partition, offset)| EventEdge {
                cursor: cursor.clone(),
                node: Event::from_recorded(event, *partition, *offset),
            })
            .collect();
        let page_info = PageInfo {
            has_next_page: page.has_next_page,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        Ok(EventConnection { edges, page_info })
    }

    async fn customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<DateTime<Utc>>,
        consistent_with: Option<String>,
        #[graphql(
            desc = "Read this generation of the read model instead of the served one (a frozen `--until` build or a kept previous one)."
        )]
        generation: Option<i32>,
    ) -> Result<Option<Customer>> {
        let state = ctx.data::<Arc<AppState>>()?;
        let customer_id = domain::CustomerId::parse(id.as_str())
            .map_err(|e| ApiError::invalid("id", e.reason))?;
        let customer = state
            .read_model(customer::NAME, consistent_with.as_deref(), generation)
            .await?;
        let view = customer::view(&customer.store, customer_id.as_str(), at(as_of))
            .map_err(ApiError::internal)?;
        Ok(view.map(|view| Customer::new(customer_id.to_string(), view)))
    }

    /// Rows per UTC day (of event time) x currency, inclusive range.
    // The arguments are the GraphQL contract's.
    #[allow(clippy::too_many_arguments)]
    async fn finance(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
        currency: Option<String>,
        as_of: Option<DateTime<Utc>>,
        consistent_with: Option<String>,
        #[graphql(
            desc = "Read this generation of the read model instead of the served one (a frozen `--until` build or a kept previous one)."
        )]
        generation: Option<i32>,
    ) -> Result<FinanceReport> {
        let state = ctx.data::<Arc<AppState>>()?;
        if to.0 < from.0 {
            return Err(ApiError::invalid("to", "must not be before from").into());
        }
        if (to.0 - from.0).num_days() >= MAX_FINANCE_DAYS {
            return Err(ApiError::invalid(
                "to",
                format!("the range may span at most {MAX_FINANCE_DAYS} days"),
            )
            .into());
        }
        if let Some(code) = &currency {
            Currency::parse(code).map_err(|e| ApiError::invalid("currency", e.to_string()))?;
        }
        let finance = state
            .read_model(finance::NAME, consistent_with.as_deref(), generation)
            .await?;
        let report = finance::report(&finance.store, from.0, to.0, currency.as_deref(), at(as_of))
            .map_err(ApiError::internal)?;
        let mut totals: std::collections::BTreeMap<String, finance::FinanceTotals> =
            Default::default();
        let mut rows = Vec::with_capacity(report.len());
        for ((day, code), sums) in &report {
            totals
                .entry(code.clone())
                .or_default()
                .add(sums)
                .map_err(ApiError::internal)?;
            rows.push(finance_row(Date(*day), code, sums)?);
        }
        let totals = totals
            .iter()
            .map(|(code, sums)| finance_row(from, code, sums))
            .collect::<Result<_, _>>()?;
        Ok(FinanceReport { rows, totals })
    }

    /// The CloudEvents HTTP sinks of this node (serve --sink NAME=URL).
    async fn sinks(&self, ctx: &Context<'_>) -> Result<Vec<SinkStatus>> {
        let state = ctx.data::<Arc<AppState>>()?;
        let mut out = Vec::new();
        for sink in &state.sinks {
            out.push(SinkStatus::from(
                crate::state::sink_status(state, sink).await?,
            ));
        }
        Ok(out)
    }

    /// Admin: the events a sink parked (all sinks, or one), by sink, order
    /// and position.
    async fn sink_parked(
        &self,
        ctx: &Context<'_>,
        sink: Option<String>,
        #[graphql(default = 100)] first: Option<i32>,
    ) -> Result<Vec<SinkParkedEvent>> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let first = page_size("first", first, 100)?;
        if let Some(name) = &sink {
            crate::state::sink_named(state, name, "sink")?;
        }
        let mut out = Vec::new();
        for handle in state
            .sinks
            .iter()
            .filter(|s| sink.as_deref().is_none_or(|name| s.name() == name))
        {
            let parked = handle.parked().map_err(ApiError::internal)?;
            out.extend(
                parked
                    .into_iter()
                    .map(|event| SinkParkedEvent::new(handle.name(), event)),
            );
        }
        out.truncate(first);
        Ok(out)
    }

    async fn projections(&self, ctx: &Context<'_>) -> Result<Vec<ProjectionStatus>> {
        let state = ctx.data::<Arc<AppState>>()?;
        let mut out = Vec::new();
        for slot in state.read.slots() {
            // Rebuild state first: a switch happens before its outcome is
            // recorded, so a finished rebuild is never shown beside the old version.
            let rebuilding = slot.rebuilding().as_ref().map(RebuildProgress::from);
            let last_rebuild = slot.last_rebuild().as_ref().map(RebuildOutcome::from);
            let handle = slot.served();
            let lag = projections::serving::lag::lag(
                state.log.as_ref(),
                &state.topics,
                &handle,
                &state.lag_probes,
            )
            .await
            .map_err(ApiError::internal)?;
            out.push(ProjectionStatus {
                name: handle.name.to_owned(),
                version: i32::try_from(handle.version).unwrap_or(i32::MAX),
                lag: lag.events.to_string(),
                lag_seconds: Some(lag.seconds),
                events_applied: lag.applied.to_string(),
                rebuilding,
                last_rebuild,
                generations: slot
                    .generations()
                    .into_iter()
                    .map(|g| i32::try_from(g).unwrap_or(i32::MAX))
                    .collect(),
                partitions: lag
                    .partitions
                    .iter()
                    .map(|p| PartitionLag {
                        partition: i32::try_from(p.partition).unwrap_or(i32::MAX),
                        position: p.position.to_string(),
                        end: p.end.to_string(),
                        lag: p.lag.to_string(),
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Admin: an order's state at `at` (default now) and the events that
    /// made it, folded from the log itself (not from a read model).
    async fn inspect_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let order_id =
            inputs::order_id(&id).map_err(|_| ApiError::invalid("id", "not a valid order id"))?;
        let inspection =
            replay::ops::inspect_order(state.log.as_ref(), &state.topics, &order_id, at)
                .await
                .map_err(ApiError::from)?;
        Ok(Inspection::from(inspection))
    }

    /// Admin: every event under one correlation id, across orders, in the
    /// flow's order, at `at` (default now), as `inspect trace` prints it.
    async fn inspect_trace(
        &self,
        ctx: &Context<'_>,
        correlation_id: String,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let correlation_id = inputs::correlation_id("correlationId", &correlation_id)?;
        let trace = state.read_model(trace::NAME, None, None).await?;
        let inspection = replay::ops::inspect_trace(&trace.store, &correlation_id, at)
            .map_err(ApiError::from)?;
        Ok(Inspection::from(inspection))
    }

    /// Admin: the fields of an order that changed between two times and the
    /// events in between, folded from the log itself.
    async fn inspect_diff(
        &self,
        ctx: &Context<'_>,
        id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Inspection> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let order_id =
            inputs::order_id(&id).map_err(|_| ApiError::invalid("id", "not a valid order id"))?;
        if to < from {
            return Err(ApiError::invalid("to", "must not be before from").into());
        }
        let inspection =
            replay::ops::inspect_diff(state.log.as_ref(), &state.topics, &order_id, from, to)
                .await
                .map_err(ApiError::from)?;
        Ok(Inspection::from(inspection))
    }

    /// Admin: folds the events topic and compares every order with its
    /// latest snapshot in the snapshots topic.
    async fn verify_snapshots(&self, ctx: &Context<'_>) -> Result<SnapshotVerification> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let report = replay::ops::verify_snapshots(state.log.as_ref(), &state.topics)
            .await
            .map_err(ApiError::from)?;
        Ok(SnapshotVerification {
            orders: i32::try_from(report.orders).unwrap_or(i32::MAX),
            snapshots: i32::try_from(report.snapshots).unwrap_or(i32::MAX),
            undecodable: report.undecodable.to_string(),
            differences: report.differences,
        })
    }

    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        projection: Option<String>,
        #[graphql(default = 50)] first: Option<i32>,
    ) -> Result<Vec<DeadLetter>> {
        let state = ctx.data::<Arc<AppState>>()?;
        let first = page_size("first", first, 50)?;
        let handles: Vec<_> = match &projection {
            Some(name) => {
                vec![state
                    .read
                    .named(name, "projection")
                    .map_err(ApiError::from)?
                    .served()]
            }
            None => state.read.all().to_vec(),
        };
        let mut out = Vec::new();
        for handle in handles {
            let letters =
                replay::ops::dead_letters(handle.name, &handle.store).map_err(ApiError::from)?;
            out.extend(letters.into_iter().map(DeadLetter::from));
        }
        out.truncate(first);
        Ok(out)
    }
}

fn finance_row(
    date: Date,
    code: &str,
    sums: &finance::FinanceTotals,
) -> Result<FinanceRow, ApiError> {
    let money = |minor| Money::of_code(minor, code);
    Ok(FinanceRow {
        date,
        currency: code.to_owned(),
        orders_placed: i32::try_from(sums.orders_placed).unwrap_or(i32::MAX),
        gross: money(sums.gross)?,
        tax: money(sums.tax)?,
        captured: money(sums.captured)?,
        refunded: money(sums.refunded)?,
        net: money(sums.net().map_err(ApiError::internal)?)?,
        cancelled: i32::try_from(sums.cancelled).unwrap_or(i32::MAX),
    })
}
