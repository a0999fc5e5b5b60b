//! The live tail: follows the events topic from its end and broadcasts each
//! committed event to GraphQL subscriptions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::Topics;
use domain::{OrderEvent, RecordedEvent};
use eventlog::{EventLog, LogError, TopicPartition};
use projections::customer::{OrderSummary, ORDERS};
use projections::{ProjectionStore, RowKey};

use projections::serving::ProjectionSlot;
use tokio::sync::broadcast;

use crate::state::LiveEvent;

/// Starts the tail at the current end of the events topic.
pub async fn start(
    log: Arc<dyn EventLog>,
    topics: &Topics,
    customers: Arc<ProjectionSlot>,
    sender: broadcast::Sender<LiveEvent>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, LogError> {
    let mut assignment = Vec::new();
    for partition in 0..log.partition_count(&topics.events).await? {
        let tp = TopicPartition::new(&topics.events, partition);
        assignment.push((tp.clone(), log.watermarks(&tp).await?.1));
    }
    let mut consumer = log.consumer().await?;
    consumer.follow();
    consumer.assign(assignment).await?;
    Ok(tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut customers_of = CustomerCache::default();
        loop {
            let records = tokio::select! {
                _ = &mut shutdown => return,
                polled = consumer.poll(1000, Duration::from_millis(250)) => match polled {
                    Ok(records) => records,
                    Err(error) if error.is_transient() => {
                        tracing::warn!(%error, "live tail: transient error; polling again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, "live tail stopped");
                        return;
                    }
                },
            };
            if sender.receiver_count() == 0 {
                continue;
            }
            for stored in records {
                let Some(payload) = &stored.record.value else {
                    continue;
                };
                let Ok(event) = RecordedEvent::decode(&stored.record.headers, payload) else {
                    continue;
                };
                let customer_id = customers_of.customer_of(&event, &customers.served().store);
                let _ = sender.send(LiveEvent {
                    event: event.to_structured(),
                    partition: stored.partition,
                    offset: stored.offset,
                    customer_id,
                });
            }
        }
    }))
}

/// Orders seen placed by this tail, and their customers (bounded).
#[derive(Debug, Default)]
struct CustomerCache {
    by_order: HashMap<String, String>,
}

const CACHE_LIMIT: usize = 100_000;

impl CustomerCache {
    /// The customer of an event's order: in the event for OrderPlaced, else
    /// remembered from it, else from the customer read model.
    fn customer_of(
        &mut self,
        event: &RecordedEvent,
        customers: &ProjectionStore,
    ) -> Option<String> {
        let order_id = &event.envelope.subject;
        if let OrderEvent::OrderPlaced(placed) = &event.event {
            if self.by_order.len() >= CACHE_LIMIT {
                self.by_order.clear();
            }
            self.by_order
                .insert(order_id.clone(), placed.customer_id.to_string());
        }
        if let Some(customer) = self.by_order.get(order_id) {
            return Some(customer.clone());
        }
        let key = RowKey::new(ORDERS, &[order_id]);
        let row = customers.row_as_of(&key, DateTime::<Utc>::MAX_UTC).ok()??;
        serde_json::from_slice::<OrderSummary>(&row)
            .ok()
            .map(|s| s.customer_id)
    }
}
