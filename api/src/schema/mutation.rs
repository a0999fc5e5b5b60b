//! Mutations: each sends one command and answers with its outcome.

use std::sync::Arc;

use async_graphql::{Context, Object, Result, ID};
use chrono::{DateTime, Utc};
use commands::CommandsError;
use domain::{Command, CommandBody};
use projections::serving::ProjectionSlot;

use crate::error::ApiError;
use crate::schema::inputs::{self, *};
use crate::schema::types::{
    CommandResult, DeadLetter, DeadLetterRetry, Event, ProjectionVerification, RebuildStarted,
    SinkParkedEvent,
};
use crate::state::{require_admin, AppState, CommandHeaders};

#[derive(Debug, Default)]
pub struct Mutation;

/// A projection's slot and code by name, or a validation error on `field`.
fn projection_of<'a>(
    state: &'a AppState,
    name: &str,
    field: &'static str,
) -> Result<(&'a Arc<ProjectionSlot>, Arc<dyn projections::Projection>), ApiError> {
    let slot = state.read.named(name, field)?;
    Ok((slot, slot.projection.clone()))
}

async fn send(
    ctx: &Context<'_>,
    order: &str,
    input: &impl CommandInput,
    body: CommandBody,
) -> Result<CommandResult> {
    let state = ctx.data::<Arc<AppState>>()?;
    let (key, correlation) = input.keys();
    let envelope = inputs::envelope(order, key, correlation)?;
    let headers = ctx
        .data_opt::<CommandHeaders>()
        .cloned()
        .unwrap_or_default();
    let correlation_id = match (envelope.correlation_id, headers.correlation_id.clone()) {
        (Some(id), _) => id,
        (None, Some(header)) => inputs::correlation_id("X-Correlation-Id", &header)?,
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    let command = Command {
        command_id: envelope.command_id,
        order_id: envelope.order_id,
        body,
    };
    let started = std::time::Instant::now();
    let answer = state
        .gateway
        .send(command, correlation_id, headers.trace())
        .await;
    let outcome = match &answer {
        Ok(_) => Some("accepted"),
        Err(CommandsError::Rejected(_)) => Some("rejected"),
        Err(CommandsError::Timeout { .. }) => Some("timeout"),
        Err(CommandsError::NotReady { .. }) => Some("unavailable"),
        Err(CommandsError::DiskLow(_)) => Some("disk_low"),
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        state
            .metrics
            .record_command(started.elapsed().as_secs_f64(), outcome);
    }
    let accepted = answer.map_err(ApiError::from)?;
    Ok(CommandResult {
        order_id: ID(accepted.order_id),
        version: i32::try_from(accepted.version).unwrap_or(i32::MAX),
        events: accepted
            .events
            .iter()
            .map(Event::from_reply)
            .collect::<Result<_, _>>()?,
        consistency_token: accepted.consistency_token,
    })
}

#[Object]
impl Mutation {
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderInput,
    ) -> Result<CommandResult> {
        let order_id = match &input.order_id {
            Some(id) => id.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        send(ctx, &order_id, &input, input.body()).await
    }

    async fn confirm_payment(
        &self,
        ctx: &Context<'_>,
        input: ConfirmPaymentInput,
    ) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, input.body()).await
    }

    async fn reserve_inventory(
        &self,
        ctx: &Context<'_>,
        input: OrderRefInput,
    ) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, CommandBody::ReserveInventory).await
    }

    async fn ship_order(&self, ctx: &Context<'_>, input: ShipOrderInput) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, input.body()).await
    }

    async fn deliver_order(
        &self,
        ctx: &Context<'_>,
        input: OrderRefInput,
    ) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, CommandBody::DeliverOrder).await
    }

    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        input: CancelOrderInput,
    ) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, input.body()).await
    }

    /// Admin: builds the next generation of a projection from the log while
    /// the served one keeps answering, then switches to it (unless `until`
    /// is given: then a generation frozen at that time is built beside the
    /// served one). Follow it with `projections { rebuilding lastRebuild }`.
    async fn rebuild_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        until: Option<DateTime<Utc>>,
        #[graphql(default = false)] keep_previous: bool,
    ) -> Result<RebuildStarted> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let (slot, _) = projection_of(state, &name, "name")?;
        // A generation is a whole new copy of the read model.
        state.disk.check().map_err(|low| ApiError {
            retry_after_ms: Some(crate::error::RETRY_DISK_LOW_MS),
            ..ApiError::unavailable(format!(
                "{low}; a rebuild writes a new generation beside the served one, so none was started"
            ))
        })?;
        let served_version = slot.served().version;
        let target = state
            .rebuilder
            .start(&name, until, keep_previous)
            .await
            .map_err(ApiError::from)?;
        Ok(RebuildStarted {
            name,
            target_version: i32::try_from(target).unwrap_or(i32::MAX),
            served_version: i32::try_from(served_version).unwrap_or(i32::MAX),
        })
    }

    /// Admin: serves another existing generation of a projection (a rollback
    /// to a kept previous one, or a frozen one): its worker catches it up
    /// with the log, then it is switched to like a rebuild. The generation
    /// left is kept. Follow it with `projections { rebuilding lastRebuild }`.
    async fn switch_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        generation: i32,
    ) -> Result<RebuildStarted> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let (slot, _) = projection_of(state, &name, "name")?;
        let generation = u32::try_from(generation)
            .ok()
            .filter(|g| *g >= 1)
            .ok_or_else(|| ApiError::invalid("generation", "must be 1 or more"))?;
        let served_version = slot.served().version;
        let target = state
            .rebuilder
            .switch_to(&name, generation)
            .await
            .map_err(ApiError::from)?;
        Ok(RebuildStarted {
            name,
            target_version: i32::try_from(target).unwrap_or(i32::MAX),
            served_version: i32::try_from(served_version).unwrap_or(i32::MAX),
        })
    }

    /// Admin: rebuilds a projection into a scratch store up to the served
    /// generation's checkpoints and compares the two entry by entry. The
    /// projection's worker pauses for the last stretch and the comparison.
    async fn verify_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<ProjectionVerification> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let (slot, projection) = projection_of(state, &name, "name")?;
        let served = slot.served();
        let verification = replay::ops::verify_projection(
            projection.as_ref(),
            state.log.as_ref(),
            &state.topics,
            (served.version, &served.store),
            &state.data_dir,
            eventlog::shared_shutdown(std::future::pending()),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(ProjectionVerification::from(verification))
    }

    /// Admin: applies the parked events of a projection again, in order,
    /// once their cause is fixed (all parked orders, or one). Stops, per
    /// order, at the first event that still fails.
    async fn retry_dead_letters(
        &self,
        ctx: &Context<'_>,
        projection: String,
        order_id: Option<ID>,
    ) -> Result<DeadLetterRetry> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let (slot, code) = projection_of(state, &projection, "projection")?;
        let served = slot.served();
        let report = replay::ops::retry_dead_letters(
            code.as_ref(),
            &served.store,
            order_id.as_ref().map(|id| id.as_str()),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(DeadLetterRetry {
            applied: i32::try_from(report.applied).unwrap_or(i32::MAX),
            still_parked: i32::try_from(report.still_parked).unwrap_or(i32::MAX),
        })
    }

    /// Admin: sends a sink's parked events again (of one order, or of
    /// all), in order per order; answers how many were queued. They are
    /// delivered in the background: `sinks` and `sinkParked` show how it goes.
    async fn retry_sink_events(
        &self,
        ctx: &Context<'_>,
        sink: String,
        order_id: Option<ID>,
    ) -> Result<i32> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let handle = crate::state::sink_named(state, &sink, "sink")?;
        let queued = handle
            .retry(order_id.as_ref().map(|id| id.as_str()))
            .await
            .map_err(ApiError::internal)?;
        Ok(i32::try_from(queued).unwrap_or(i32::MAX))
    }

    /// Admin: drops one parked event of a sink for good (its receiver never
    /// gets it); `confirm` must be true. The order's later events flow
    /// again once it has no parked event left.
    async fn discard_sink_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        confirm: bool,
    ) -> Result<SinkParkedEvent> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let not_an_id = || ApiError::invalid("id", "not a parked event id (sink:partition:offset)");
        let (name, position) = id.split_once(':').ok_or_else(not_an_id)?;
        let (partition, offset) =
            projections::dlq::parse_position(position).ok_or_else(not_an_id)?;
        let handle = crate::state::sink_named(state, name, "id")?;
        if !confirm {
            return Err(ApiError::invalid(
                "confirm",
                format!(
                    "discarding means the receiver of sink {name} never gets the event: pass true"
                ),
            )
            .into());
        }
        match handle.discard(partition, offset).await {
            Ok(Some(event)) => Ok(SinkParkedEvent::new(name, event)),
            Ok(None) => Err(ApiError::not_found(format!(
                "no parked event {} (or its order is being sent again)",
                id.as_str()
            ))
            .into()),
            Err(error) => Err(ApiError::internal(error).into()),
        }
    }

    /// Admin: drops one dead letter for good (the read model never gets
    /// that event); `confirm` must be true. Its order is unparked when it
    /// was the order's last dead letter.
    async fn discard_dead_letter(
        &self,
        ctx: &Context<'_>,
        id: ID,
        confirm: bool,
    ) -> Result<DeadLetter> {
        require_admin(ctx)?;
        let state = ctx.data::<Arc<AppState>>()?;
        let not_an_id =
            || ApiError::invalid("id", "not a dead letter id (projection:partition:offset)");
        let (name, position) = id.split_once(':').ok_or_else(not_an_id)?;
        let (partition, offset) =
            projections::dlq::parse_position(position).ok_or_else(not_an_id)?;
        let (slot, _) = projection_of(state, name, "id")?;
        if !confirm {
            return Err(ApiError::invalid(
                "confirm",
                format!("discarding loses the event for the {name} read model: pass true"),
            )
            .into());
        }
        let served = slot.served();
        match replay::ops::discard_dead_letter(slot.name, &served.store, partition, offset).await {
            Ok(letter) => Ok(DeadLetter::from(letter)),
            Err(replay::ops::OpsError::NotFound(_)) => {
                Err(ApiError::not_found(format!("no dead letter {}", id.as_str())).into())
            }
            Err(error) => Err(ApiError::from(error).into()),
        }
    }

    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        input: RefundPaymentInput,
    ) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, input.body()).await
    }
}
