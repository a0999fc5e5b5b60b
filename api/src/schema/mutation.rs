//! Mutations: each sends one command and answers with its outcome.

use std::sync::Arc;

use async_graphql::{Context, Object, Result, ID};
use domain::{Command, CommandBody};
use eventlog::processor::Outcome;

use crate::error::ApiError;
use crate::schema::inputs::{self, *};
use crate::schema::types::{CommandResult, Event};
use crate::schema::{AppState, CorrelationHeader};

#[derive(Debug, Default)]
pub struct Mutation;

async fn send(
    ctx: &Context<'_>,
    order: &str,
    key: Option<&str>,
    correlation: Option<&str>,
    body: CommandBody,
) -> Result<CommandResult> {
    let state = ctx.data::<Arc<AppState>>()?;
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
        let body = input.body();
        send(
            ctx,
            &order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }

    async fn confirm_payment(
        &self,
        ctx: &Context<'_>,
        input: ConfirmPaymentInput,
    ) -> Result<CommandResult> {
        let body = input.body();
        send(
            ctx,
            &input.order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }

    async fn reserve_inventory(
        &self,
        ctx: &Context<'_>,
        input: OrderRefInput,
    ) -> Result<CommandResult> {
        let body = CommandBody::ReserveInventory;
        send(
            ctx,
            &input.order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }

    async fn ship_order(&self, ctx: &Context<'_>, input: ShipOrderInput) -> Result<CommandResult> {
        let body = input.body();
        send(
            ctx,
            &input.order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }

    async fn deliver_order(
        &self,
        ctx: &Context<'_>,
        input: OrderRefInput,
    ) -> Result<CommandResult> {
        let body = CommandBody::DeliverOrder;
        send(
            ctx,
            &input.order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }

    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        input: CancelOrderInput,
    ) -> Result<CommandResult> {
        let body = input.body();
        send(
            ctx,
            &input.order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }

    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        input: RefundPaymentInput,
    ) -> Result<CommandResult> {
        let body = input.body();
        send(
            ctx,
            &input.order_id,
            input.idempotency_key.as_deref(),
            input.correlation_id.as_deref(),
            body,
        )
        .await
    }
}
