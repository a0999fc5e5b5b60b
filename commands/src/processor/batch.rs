//! One lane batch of commands: decide all, then one transaction.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use domain::{decide, evolve, EventMeta, Recorded, RecordedEvent};
use uuid::Uuid;

use eventlog::{
    GroupOffset, LogTransaction, OutgoingRecord, Position, Record, StoredRecord, TopicPartition,
};

use crate::consistency::consistency_token;
use crate::messages::{CommandMessage, Outcome, RejectionReply, Reply, ReplyEvent, Snapshot};
use crate::processor::lane::Lane;
use crate::CommandsError;

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

/// One command of the batch and what was decided for it.
#[derive(Debug)]
struct Decided {
    message: CommandMessage,
    partition: u32,
    decision: Decision,
}

impl Decided {
    /// The events this command writes (none unless accepted).
    fn events(&self) -> &[RecordedEvent] {
        match &self.decision {
            Decision::Accepted(events) => events,
            _ => &[],
        }
    }
}

/// The orders a batch touched, with their snapshots as the batch leaves them.
type Touched = HashMap<String, (u32, Snapshot)>;

/// How a lane's attempt at a batch ended, when no error stopped it.
#[derive(Debug)]
enum Attempt {
    Committed,
    /// The events did not land where predicted: the transaction was
    /// aborted and nothing of it was answered.
    Mispredicted {
        predicted: u64,
        landed: Option<Position>,
    },
}

impl Lane {
    /// One lane batch: decide every command, then one transaction with the
    /// events, the replies, the snapshots of the touched orders and the
    /// consumed offsets; the local state store follows only after the commit.
    ///
    /// Replies and snapshots carry the events' positions. When the lane
    /// knows where its next event lands (`next_event_offset`, learnt from
    /// its last commit), everything goes in one send and the positions the
    /// log answers are checked before the commit; a mismatch (another
    /// writer in the partition) aborts, and the batch is sent again the
    /// slow way: events first, the rest once their positions are known.
    pub(crate) async fn process(
        &mut self,
        records: Vec<StoredRecord>,
    ) -> Result<(), CommandsError> {
        if let Some(predicted) = self.next_event_offset {
            match self.attempt(&records, Some(predicted)).await? {
                Attempt::Committed => return Ok(()),
                Attempt::Mispredicted { predicted, landed } => {
                    self.status.count_misprediction();
                    tracing::info!(
                        partition = self.partition,
                        predicted,
                        landed = ?landed,
                        "events did not land where predicted (another writer?); sending the batch again"
                    );
                }
            }
        }
        match self.attempt(&records, None).await? {
            Attempt::Committed => Ok(()),
            Attempt::Mispredicted { .. } => Err(CommandsError::corrupt(
                "a batch sent without a prediction was mispredicted",
            )),
        }
    }

    /// One try at a batch: with `predicted`, the offset its first event is
    /// expected at, in one send; without, events first.
    async fn attempt(
        &mut self,
        records: &[StoredRecord],
        predicted: Option<u64>,
    ) -> Result<Attempt, CommandsError> {
        // Whatever happens next, only a commit tells where the next event lands.
        self.next_event_offset = None;
        let started = std::time::Instant::now();
        let commands = records.len();
        let mut next_offsets: BTreeMap<u32, u64> = BTreeMap::new();
        let mut touched = Touched::new();
        let mut decided = Vec::with_capacity(records.len());
        for stored in records {
            next_offsets.insert(stored.partition, stored.offset + 1);
            let Some(message) = parse_command(stored) else {
                continue;
            };
            let decision = self.decide_one(&message, stored.partition, &mut touched)?;
            decided.push(Decided {
                message,
                partition: stored.partition,
                decision,
            });
        }
        let decided_us = started.elapsed().as_micros() as u64;
        let offsets = next_offsets
            .iter()
            .map(|(p, next)| GroupOffset {
                group: self.topics.processor_group(),
                partition: TopicPartition::new(&self.topics.commands, *p),
                next_offset: *next,
            })
            .collect();
        let mut txn = self.log.begin().await?;
        // The consumed offsets are known before anything is sent: Kafka
        // registers them beside the sends instead of after them.
        txn.send_offsets(offsets).await?;
        let events = event_records(&self.topics.events, &decided);
        let (positions, unsent_events) = match predicted {
            Some(first) => {
                let positions = (first..)
                    .zip(&events)
                    .map(|(offset, event)| Position {
                        partition: event.partition.unwrap_or(self.partition),
                        offset,
                    })
                    .collect();
                (positions, events)
            }
            None => (send_events(txn.as_mut(), events).await?, Vec::new()),
        };
        let replies = self
            .replies(&decided, positions.clone(), &mut touched)
            .await?;
        // Replies are kept for the replies topic's retention from when
        // they are written (a reply stamped 0 would be past it at once).
        let written_ms = self.clock_now().timestamp_millis();
        let reply_records = replies
            .iter()
            .map(|(partition, reply)| {
                reply_record(&self.topics.replies, *partition, reply, written_ms)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Orders that were never placed (rejected commands) get no snapshot.
        touched.retain(|_, (_, snapshot)| snapshot.state.order.is_some());
        let snapshots = touched
            .iter()
            .map(|(order_id, (partition, snapshot))| {
                snapshot_record(&self.topics.snapshots, order_id, *partition, snapshot)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rest = snapshots;
        rest.extend(reply_records);
        match predicted {
            // Snapshots and replies needed the events' positions: one send,
            // one round trip after the events.
            None => {
                txn.send(rest).await?;
            }
            // One send for all; the commit waits until the log's positions
            // for the events are the predicted ones.
            Some(predicted) => {
                let mut all = unsent_events;
                all.extend(rest);
                let landed = txn.send(all).await?;
                if landed.get(..positions.len()) != Some(&positions[..]) {
                    txn.abort().await?;
                    return Ok(Attempt::Mispredicted {
                        predicted,
                        landed: landed.first().copied(),
                    });
                }
            }
        }
        let sent_us = started.elapsed().as_micros() as u64;
        txn.commit(vec![]).await?;
        let committed_us = started.elapsed().as_micros() as u64;
        self.status.count_transaction();
        // The next event follows this batch's last and its commit's marker;
        // a batch without events leaves the events partition as it was.
        self.next_event_offset = match positions.last() {
            Some(last) => Some(last.offset + 1 + self.log.marker_offsets()),
            None => predicted,
        };
        // Committed, so durable: this node's gateway answers its commands
        // now, without waiting for their replies to come back through the log.
        self.status
            .answer_committed(replies.iter().map(|(_, reply)| reply));
        self.save_after_commit(&next_offsets, &touched)?;
        tracing::debug!(
            partition = self.partition,
            commands,
            predicted = predicted.is_some(),
            decided_us,
            sent_us,
            committed_us,
            saved_us = started.elapsed().as_micros() as u64,
            "lane batch committed"
        );
        Ok(Attempt::Committed)
    }

    /// The reply of every command, in one pass in command order: each
    /// accepted command takes exactly the positions of its own events (and
    /// records them in its order's snapshot), and a repeat of a command
    /// decided earlier in the batch finds those events (not committed yet,
    /// so not readable from the log) in `in_batch`.
    async fn replies(
        &mut self,
        decided: &[Decided],
        positions: Vec<Position>,
        touched: &mut Touched,
    ) -> Result<Vec<(u32, Reply)>, CommandsError> {
        let mut positions = positions.into_iter();
        let mut in_batch: HashMap<(String, u64), ReplyEvent> = HashMap::new();
        let mut replies = Vec::with_capacity(decided.len());
        for d in decided {
            let outcome = match &d.decision {
                Decision::Accepted(events) => {
                    let mut views = Vec::with_capacity(events.len());
                    for (event, position) in events.iter().zip(positions.by_ref()) {
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
                    accepted_outcome(version, views)
                }
                Decision::Repeat => {
                    self.repeat_outcome(&d.message, d.partition, touched, &in_batch)
                        .await?
                }
                Decision::Rejected(rejection) => Outcome::Rejected(rejection.clone()),
            };
            let reply = Reply {
                command_id: d.message.command.command_id.to_string(),
                order_id: d.message.command.order_id.to_string(),
                reply_to: d.message.reply_to.clone(),
                outcome,
            };
            replies.push((d.partition, reply));
        }
        Ok(replies)
    }

    /// The local state store reflects the committed batch: its snapshots
    /// and, per partition, the next command offset.
    fn save_after_commit(
        &self,
        next_offsets: &BTreeMap<u32, u64>,
        touched: &Touched,
    ) -> Result<(), CommandsError> {
        for (&partition, &next) in next_offsets {
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
        touched: &mut Touched,
    ) -> Result<Decision, CommandsError> {
        let order_id = message.command.order_id.to_string();
        if !touched.contains_key(&order_id) {
            let snapshot = self.store.load(&order_id)?.unwrap_or_else(Snapshot::empty);
            touched.insert(order_id.clone(), (partition, snapshot));
        }
        let command_id = message.command.command_id.to_string();
        let Some((_, snapshot)) = touched.get(&order_id) else {
            return Err(CommandsError::corrupt("order vanished from the batch"));
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
                        time: self.next_event_time(),
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
                        trace: message.trace.clone(),
                    };
                    recorded_events.push(RecordedEvent::new(&recorded, meta));
                }
                if let Some((_, snapshot)) = touched.get_mut(&order_id) {
                    snapshot.state = state;
                }
                tracing::debug!(order_id, command_id, correlation_id = %message.correlation_id, trace_id = trace_id(message), "command accepted");
                Ok(Decision::Accepted(recorded_events))
            }
            Err(rejection) => {
                let reply = RejectionReply::from(&rejection);
                tracing::debug!(order_id, command_id, code = reply.code.as_str(), correlation_id = %message.correlation_id, trace_id = trace_id(message), "command rejected");
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
        touched: &Touched,
        in_batch: &HashMap<(String, u64), ReplyEvent>,
    ) -> Result<Outcome, CommandsError> {
        let order_id = message.command.order_id.to_string();
        let Some((_, snapshot)) = touched.get(&order_id) else {
            return Err(CommandsError::corrupt("order vanished from the batch"));
        };
        let Some((first, last)) = snapshot.state.outcome_of(&message.command.command_id) else {
            return Err(CommandsError::corrupt("a repeat without an outcome"));
        };
        let mut views = Vec::new();
        let tp = TopicPartition::new(&self.topics.events, partition);
        for sequence in first..=last {
            if let Some(view) = in_batch.get(&(order_id.clone(), sequence)) {
                views.push(view.clone());
                continue;
            }
            let unreadable = |offset| CommandsError::RepeatUnreadable {
                command_id: message.command.command_id.to_string(),
                sequence,
                partition,
                offset,
            };
            let offset = snapshot
                .event_offsets
                .get((sequence - 1) as usize)
                .copied()
                .ok_or_else(|| {
                    CommandsError::corrupt(format!(
                        "the snapshot of {order_id} has no offset for sequence {sequence}"
                    ))
                })?;
            let reader = self.repeat_reader().await?;
            reader.assign(vec![(tp.clone(), offset)]).await?;
            let found = reader.poll(1, Duration::from_secs(5)).await?;
            let stored = found
                .into_iter()
                .find(|r| r.offset == offset)
                .ok_or_else(|| unreadable(offset))?;
            let value = stored
                .record
                .value
                .as_ref()
                .ok_or_else(|| unreadable(offset))?;
            let event = RecordedEvent::decode(&stored.record.headers, value).map_err(|e| {
                CommandsError::corrupt(format!("event at {partition}:{offset}: {e}"))
            })?;
            views.push(ReplyEvent {
                partition,
                offset,
                cloudevent: event.to_cloudevent_json(),
            });
        }
        Ok(accepted_outcome(last, views))
    }
}

/// Every accepted event of the batch, in command order.
fn event_records(topic: &str, decided: &[Decided]) -> Vec<OutgoingRecord> {
    decided
        .iter()
        .flat_map(|d| {
            d.events()
                .iter()
                .map(|e| event_record(topic, e, d.partition))
        })
        .collect()
}

/// Sends the batch's events; answers one position per event (anything
/// else is refused).
async fn send_events(
    txn: &mut dyn LogTransaction,
    events: Vec<OutgoingRecord>,
) -> Result<Vec<Position>, CommandsError> {
    let sent = events.len();
    let positions = txn.send(events).await?;
    if positions.len() != sent {
        return Err(CommandsError::corrupt(format!(
            "the log answered {} positions for {sent} events",
            positions.len()
        )));
    }
    Ok(positions)
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
) -> Result<OutgoingRecord, CommandsError> {
    let value = serde_json::to_vec(snapshot).map_err(CommandsError::corrupt)?;
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

/// A reply goes to the command's own partition of the replies topic (the
/// gateway reads them all), so a lane's transaction stays in its partition.
fn reply_record(
    topic: &str,
    partition: u32,
    reply: &Reply,
    timestamp_ms: i64,
) -> Result<OutgoingRecord, CommandsError> {
    let value = serde_json::to_vec(reply).map_err(CommandsError::corrupt)?;
    Ok(OutgoingRecord {
        topic: topic.to_owned(),
        partition: Some(partition),
        record: Record {
            key: reply.command_id.as_bytes().to_vec(),
            value: Some(value),
            headers: vec![],
            timestamp_ms,
        },
    })
}

/// The trace id of a command, for its log lines ("" when it has none).
fn trace_id(message: &CommandMessage) -> &str {
    message
        .trace
        .as_ref()
        .map_or("", domain::TraceContext::trace_id)
}
