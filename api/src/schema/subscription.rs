//! The live subscription: events as they are committed, for one order or
//! one customer, from a broadcast fed by the live tail (`crate::live`).

use std::sync::Arc;

use async_graphql::{Context, Result, Subscription as GqlSubscription, ID};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::schema::types::Event;
use crate::state::AppState;

#[derive(Debug, Default)]
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Live events, optionally for one order or one customer.
    async fn order_events(
        &self,
        ctx: &Context<'_>,
        order_id: Option<ID>,
        customer_id: Option<ID>,
    ) -> Result<impl Stream<Item = Event>> {
        let state = ctx.data::<Arc<AppState>>()?;
        let stream = BroadcastStream::new(state.live.subscribe()).filter_map(move |item| {
            let wanted = item.ok().filter(|live| {
                order_id
                    .as_ref()
                    .is_none_or(|id| live.event.subject == id.as_str())
                    && customer_id
                        .as_ref()
                        .is_none_or(|id| live.customer_id.as_deref() == Some(id.as_str()))
            });
            async move { wanted.map(|live| Event::new(live.event, live.partition, live.offset)) }
        });
        Ok(stream)
    }
}
