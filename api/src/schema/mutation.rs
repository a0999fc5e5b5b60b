//! Mutations: each sends one command and answers with its outcome.

use std::sync::Arc;

use async_graphql::{Context, Object, Result, ID};
use chrono::{DateTime, Utc};
use domain::{Command, CommandBody};
use eventlog::processor::Outcome;

use crate::error::ApiError;
use crate::schema::inputs::{self, *};
use crate::schema::types::{CommandResult, Event, RebuildStarted};
use crate::schema::{require_admin, AppState, CorrelationHeader};

#[derive(Debug, Default)]
pub struct Mutation;

async fn send(
    ctx: &Context<'_>,
    order: &str,
    input: &impl CommandInput,
    body: CommandBody,
) -> Result<CommandResult> {
    let state = ctx.data::<Arc<AppState>>()?;
    let (key, correlation) = input.keys();
    let envelope = inputs::envelope(order, key, correlation)?;
    let header = ctx
        .data_opt::<CorrelationHeader>()
        .and_then(|h| h.0.clone());
    let correlation_id = match (envelope.correlation_id, header) {
        (Some(id), _) => id,
        (None, Some(header)) => inputs::correlation_id("X-Correlation-Id", &header)?,
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    let command = Command {
        command_id: envelope.command_id,
        order_id: envelope.order_id,
        body,
    };
    let reply = state.gateway.send(command, correlation_id).await?;
    match reply.outcome {
        Outcome::Accepted {
            version,
            events,
            consistency_token,
        } => Ok(CommandResult {
            order_id: ID(reply.order_id),
            version: i32::try_from(version).unwrap_or(i32::MAX),
            events: events
                .iter()
                .map(|e| Event::from_cloudevent(&e.cloudevent, e.partition, e.offset))
                .collect::<Result<_, _>>()?,
            consistency_token,
        }),
        Outcome::Rejected(rejection) => Err(ApiError::from(&rejection).into()),
    }
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
        let slot = state
            .read
            .slot(&name)
            .ok_or_else(|| ApiError::invalid("name", "must be history, customer or finance"))?;
        let served_version = slot.served().version;
        let target = state.rebuilder.start(&name, until, keep_previous).await?;
        Ok(RebuildStarted {
            name,
            target_version: i32::try_from(target).unwrap_or(i32::MAX),
            served_version: i32::try_from(served_version).unwrap_or(i32::MAX),
        })
    }

    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        input: RefundPaymentInput,
    ) -> Result<CommandResult> {
        send(ctx, &input.order_id, &input, input.body()).await
    }
}
