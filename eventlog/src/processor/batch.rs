//! One poll batch of commands: decide all, then one transaction.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use domain::{decide, evolve, EventMeta, Recorded, RecordedEvent};
use uuid::Uuid;

use crate::processor::messages::{
    consistency_token, CommandMessage, Outcome, RejectionReply, Reply, ReplyEvent, Snapshot,
};
use crate::processor::CommandProcessor;
use crate::{GroupOffset, LogError, OutgoingRecord, Record, StoredRecord, TopicPartition};

/// Namespace of event ids: uuid v5 of "order/sequence", so a retried
/// transaction writes the same ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f0e_3c1a_9b7d_4e52_8a41_2d6c_0b9f_7e13);

/// What was decided for one command, before the transaction.
#[derive(Debug)]
enum Decision {
    /// New events, in sequence order.
    Accepted(Vec<RecordedEvent>),
    /// An already applied command: answer with its original events.
    Repeat,
    Rejected(RejectionReply),
}

#[derive(Debug)]
struct Decided {
    message: CommandMessage,
    partition: u32,
    decision: Decision,
}

impl CommandProcessor {
    pub(crate) async fn process(&mut self, records: Vec<StoredRecord>) -> Result<(), LogError> {
        let mut next_offsets: BTreeMap<u32, u64> = BTreeMap::new();
        let mut touched: HashMap<String, (u32, Snapshot)> = HashMap::new();
        let mut decided = Vec::with_capacity(records.len());
        for stored in records {
            next_offsets.insert(stored.partition, stored.offset + 1);
            let Some(message) = parse_command(&stored) else {
                continue;
            };
            let decision = self.decide_one(&message, stored.partition, &mut touched)?;
            decided.push(Decided {
                message,
                partition: stored.partition,
                decision,
            });
        }

        let mut txn = self.log.begin().await?;
        let events: Vec<OutgoingRecord> = decided
            .iter()
            .filter_map(|d| match &d.decision {
                Decision::Accepted(events) => Some(
                    events
                        .iter()
                        .map(|e| event_record(&self.topics.events, e, d.partition)),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        let positions = txn.send(events).await?;
        // Record where each new event landed, in the order they were sent.
        let mut landed = positions.iter();
        let mut accepted_views: Vec<(u64, Vec<ReplyEvent>)> = Vec::new();
        // Events of this batch by (order, sequence): a repeat of a command
        // decided earlier in the batch is answered from here, since its
        // events are not committed yet and cannot be read back.
        let mut in_batch: HashMap<(String, u64), ReplyEvent> = HashMap::new();
        for d in &decided {
            if let Decision::Accepted(events) = &d.decision {
                let mut views = Vec::with_capacity(events.len());
                for event in events {
                    let position = landed
                        .next()
                        .ok_or_else(|| LogError::Invalid("missing position".into()))?;
                    if let Some((_, snapshot)) = touched.get_mut(&event.envelope.subject) {
                        snapshot.event_offsets.push(position.offset);
                    }
                    let view = ReplyEvent {
                        partition: position.partition,
                        offset: position.offset,
                        cloudevent: event.to_cloudevent_json(),
                    };
                    in_batch.insert(
                        (event.envelope.subject.clone(), event.envelope.sequence),
                        view.clone(),
                    );
                    views.push(view);
                }
                let version = events.last().map_or(0, |e| e.envelope.sequence);
                accepted_views.push((version, views));
            }
        }

        let mut replies = Vec::with_capacity(decided.len());
        let mut accepted = accepted_views.into_iter();
        for d in &decided {
            let outcome = match &d.decision {
                Decision::Accepted(_) => {
                    let (version, views) = accepted.next().unwrap_or_default();
                    accepted_outcome(version, views)
                }
                Decision::Repeat => {
                    self.repeat_outcome(&d.message, d.partition, &touched, &in_batch)
                        .await?
                }
                Decision::Rejected(rejection) => Outcome::Rejected(rejection.clone()),
            };
            replies.push(reply_record(&self.topics.replies, &d.message, outcome)?);
        }
        // Orders that were never placed (rejected commands) get no snapshot.
        touched.retain(|_, (_, snapshot)| snapshot.state.order.is_some());
        let snapshots = touched
            .iter()
            .map(|(order_id, (partition, snapshot))| {
                snapshot_record(&self.topics.snapshots, order_id, *partition, snapshot)
            })
            .collect::<Result<Vec<_>, _>>()?;
        txn.send(snapshots).await?;
        txn.send(replies).await?;
        let offsets = next_offsets
            .iter()
            .map(|(p, next)| GroupOffset {
                group: self.topics.processor_group(),
                partition: TopicPartition::new(&self.topics.commands, *p),
                next_offset: *next,
            })
            .collect();
        txn.commit(offsets).await?;

        for (partition, next) in next_offsets {
            let saved: Vec<(String, Snapshot)> = touched
                .iter()
                .filter(|(_, (p, _))| *p == partition)
                .map(|(id, (_, s))| (id.clone(), s.clone()))
                .collect();
            self.store.save(partition, Some(next), &saved)?;
        }
        Ok(())
    }

    fn decide_one(
        &mut self,
        message: &CommandMessage,
        partition: u32,
        touched: &mut HashMap<String, (u32, Snapshot)>,
    ) -> Result<Decision, LogError> {
        let order_id = message.command.order_id.to_string();
        if !touched.contains_key(&order_id) {
            let snapshot = self.store.load(&order_id)?.unwrap_or_else(Snapshot::empty);
            touched.insert(order_id.clone(), (partition, snapshot));
        }
        let command_id = message.command.command_id.to_string();
        let Some((_, snapshot)) = touched.get(&order_id) else {
            return Err(LogError::Invalid("order vanished from the batch".into()));
        };
        if let Some(rejection) = snapshot.rejection_of(&command_id) {
            return Ok(Decision::Rejected(rejection.clone()));
        }
        match decide(&message.command, &snapshot.state) {
            Ok(events) if events.is_empty() => Ok(Decision::Repeat),
            Ok(events) => {
                let mut state = snapshot.state.clone();
                let mut recorded_events = Vec::with_capacity(events.len());
                for event in events {
                    let recorded = Recorded {
                        order_id: message.command.order_id.clone(),
                        sequence: state.version + 1,
                        time: self.next_event_time(partition),
                        command_id: message.command.command_id.clone(),
                        event,
                    };
                    state = evolve(state, &recorded);
                    let id = Uuid::new_v5(
                        &EVENT_ID_NAMESPACE,
                        format!("{order_id}/{}", recorded.sequence).as_bytes(),
                    );
                    let meta = EventMeta {
                        id: id.to_string(),
                        correlation_id: message.correlation_id.clone(),
                    };
                    recorded_events.push(RecordedEvent::new(&recorded, meta));
                }
                if let Some((_, snapshot)) = touched.get_mut(&order_id) {
                    snapshot.state = state;
                }
                tracing::debug!(order_id, command_id, correlation_id = %message.correlation_id, "command accepted");
                Ok(Decision::Accepted(recorded_events))
            }
            Err(rejection) => {
                let reply = RejectionReply::from(&rejection);
                tracing::debug!(order_id, command_id, code = reply.code, correlation_id = %message.correlation_id, "command rejected");
                if let Some((_, snapshot)) = touched.get_mut(&order_id) {
                    snapshot.remember_rejection(&command_id, reply.clone());
                }
                Ok(Decision::Rejected(reply))
            }
        }
    }

    /// The original outcome of an already applied command, read back from
    /// the events topic at the offsets the snapshot remembers.
    async fn repeat_outcome(
        &mut self,
        message: &CommandMessage,
        partition: u32,
        touched: &HashMap<String, (u32, Snapshot)>,
        in_batch: &HashMap<(String, u64), ReplyEvent>,
    ) -> Result<Outcome, LogError> {
        let order_id = message.command.order_id.to_string();
        let Some((_, snapshot)) = touched.get(&order_id) else {
            return Err(LogError::Invalid("order vanished from the batch".into()));
        };
        let Some((first, last)) = snapshot.state.outcome_of(&message.command.command_id) else {
            return Err(LogError::Invalid("a repeat without an outcome".into()));
        };
        let mut views = Vec::new();
        let tp = TopicPartition::new(&self.topics.events, partition);
        for sequence in first..=last {
            if let Some(view) = in_batch.get(&(order_id.clone(), sequence)) {
                views.push(view.clone());
                continue;
            }
            let Some(&offset) = snapshot.event_offsets.get((sequence - 1) as usize) else {
                continue;
            };
            self.repeat_reader
                .assign(vec![(tp.clone(), offset)])
                .await?;
            let found = self.repeat_reader.poll(1, Duration::from_secs(5)).await?;
            let Some(stored) = found.into_iter().find(|r| r.offset == offset) else {
                continue;
            };
            let Some(value) = &stored.record.value else {
                continue;
            };
            if let Ok(event) = RecordedEvent::decode(&stored.record.headers, value) {
                views.push(ReplyEvent {
                    partition,
                    offset,
                    cloudevent: event.to_cloudevent_json(),
                });
            }
        }
        Ok(accepted_outcome(last, views))
    }
}

fn accepted_outcome(version: u64, events: Vec<ReplyEvent>) -> Outcome {
    let consistency_token = events
        .last()
        .map(|e| consistency_token(e.partition, e.offset))
        .unwrap_or_default();
    Outcome::Accepted {
        version,
        events,
        consistency_token,
    }
}

fn parse_command(stored: &StoredRecord) -> Option<CommandMessage> {
    let value = stored.record.value.as_deref()?;
    match serde_json::from_slice::<CommandMessage>(value) {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::warn!(partition = stored.partition, offset = stored.offset, %error, "skipping an unreadable command");
            None
        }
    }
}

fn event_record(topic: &str, event: &RecordedEvent, partition: u32) -> OutgoingRecord {
    let (headers, payload) = event.encode();
    OutgoingRecord {
        topic: topic.to_owned(),
        partition: Some(partition),
        record: Record {
            key: event.envelope.subject.as_bytes().to_vec(),
            value: Some(payload),
            headers,
            timestamp_ms: event.envelope.time.timestamp_millis(),
        },
    }
}

fn snapshot_record(
    topic: &str,
    order_id: &str,
    partition: u32,
    snapshot: &Snapshot,
) -> Result<OutgoingRecord, LogError> {
    let value = serde_json::to_vec(snapshot).map_err(|e| LogError::Invalid(e.to_string()))?;
    let timestamp_ms = snapshot
        .state
        .order
        .as_ref()
        .map_or(0, |o| o.updated_at.timestamp_millis());
    Ok(OutgoingRecord {
        topic: topic.to_owned(),
        partition: Some(partition),
        record: Record {
            key: order_id.as_bytes().to_vec(),
            value: Some(value),
            headers: vec![],
            timestamp_ms,
        },
    })
}

fn reply_record(
    topic: &str,
    message: &CommandMessage,
    outcome: Outcome,
) -> Result<OutgoingRecord, LogError> {
    let reply = Reply {
        command_id: message.command.command_id.to_string(),
        order_id: message.command.order_id.to_string(),
        reply_to: message.reply_to.clone(),
        outcome,
    };
    let value = serde_json::to_vec(&reply).map_err(|e| LogError::Invalid(e.to_string()))?;
    Ok(OutgoingRecord {
        topic: topic.to_owned(),
        partition: None,
        record: Record {
            key: reply.command_id.into_bytes(),
            value: Some(value),
            headers: vec![],
            timestamp_ms: 0,
        },
    })
}
