//! The command gateway: produces a command to the commands topic and waits
//! for its reply, which a router task picks off the replies topic for this
//! API instance, or which this node's processor hands over directly once
//! the command's transaction committed (`reply_waiters.rs`). Bounded wait;
//! a timeout says the command may still apply.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::messages::{CommandMessage, Outcome, Reply, ReplyEvent};
use crate::processor::ProcessorStatus;
use crate::reply_waiters::ReplyWaiters;
use crate::topics::Topics;
use crate::CommandsError;
use domain::{Command, TraceContext};
use eventlog::disk::DiskReserve;
use eventlog::{EventLog, LogError, OutgoingRecord, Record, StoredRecord, TopicPartition};

/// A command the processor accepted (or had accepted before: a repeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub order_id: String,
    /// Aggregate version after the command.
    pub version: u64,
    /// The events the command wrote (the original ones on a repeat).
    pub events: Vec<ReplyEvent>,
    /// Pass as `consistentWith` to read your own write.
    pub consistency_token: String,
}

#[derive(Debug)]
pub struct CommandGateway {
    log: Arc<dyn EventLog>,
    /// The commands topic.
    commands: String,
    /// The commands waiting for replies, under this instance's id.
    waiters: Arc<ReplyWaiters>,
    timeout: Duration,
    /// This node's processor, when it runs one: commands wait (within
    /// their timeout) until it serves, and are refused unsent otherwise;
    /// its lanes hand the replies of this gateway's commands straight to
    /// their waiters once committed (`reply_waiters.rs`).
    processor: Option<Arc<ProcessorStatus>>,
    /// The data directory's disk reserve: commands are refused unsent
    /// while the disk is under it.
    disk: Option<Arc<DiskReserve>>,
}

impl CommandGateway {
    /// Starts the reply router at the current end of the replies topic (so no
    /// reply to a command sent after this returns can be missed).
    pub async fn start(
        log: Arc<dyn EventLog>,
        topics: &Topics,
        timeout: Duration,
        processor: Option<Arc<ProcessorStatus>>,
        disk: Option<Arc<DiskReserve>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), LogError> {
        let mut assignment = Vec::new();
        for partition in 0..log.partition_count(&topics.replies).await? {
            let tp = TopicPartition::new(&topics.replies, partition);
            let (_, high) = log.watermarks(&tp).await?;
            assignment.push((tp, high));
        }
        let mut replies = log.consumer().await?;
        replies.follow();
        replies.assign(assignment).await?;
        let waiters = Arc::new(ReplyWaiters::new(uuid::Uuid::new_v4().to_string()));
        if let Some(status) = &processor {
            status.answer_here(waiters.clone());
        }
        let gateway = Arc::new(Self {
            log,
            commands: topics.commands.clone(),
            waiters: waiters.clone(),
            timeout,
            processor,
            disk,
        });
        let router = tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                let polled = tokio::select! {
                    _ = &mut shutdown => return,
                    polled = replies.poll(1000, Duration::from_millis(250)) => polled,
                };
                match polled {
                    Ok(records) => route(&waiters, records),
                    Err(error) if error.is_transient() => {
                        tracing::warn!(%error, "reply router: transient error; polling again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "reply router stopped");
                        return;
                    }
                }
            }
        });
        Ok((gateway, router))
    }

    /// Sends a command and waits for its outcome: accepted, or
    /// `CommandsError::Rejected` with the domain's reason, or a timeout
    /// (the command may still apply). The correlation id and the trace
    /// context land on every event the command causes.
    pub async fn send(
        &self,
        command: Command,
        correlation_id: String,
        trace: TraceContext,
    ) -> Result<Accepted, CommandsError> {
        let started = Instant::now();
        if let Some(disk) = &self.disk {
            disk.check().map_err(CommandsError::DiskLow)?;
        }
        if let Some(processor) = &self.processor {
            // Nothing is sent before this node's processor can take it, so
            // a refusal here is definite: the command was not applied.
            let phase = processor.serving_within(self.timeout).await;
            if !phase.is_serving() {
                return Err(CommandsError::NotReady {
                    phase: phase.to_string(),
                    waited_ms: started.elapsed().as_millis(),
                });
            }
        }
        let command_id = command.command_id.to_string();
        let order_id = command.order_id.to_string();
        let rx = self.waiters.wait_for(&command_id)?;
        let trace_id = trace.trace_id().to_owned();
        // The W3C headers Kafka instrumentations read, beside the message.
        let mut headers = vec![
            domain::Header::new("correlation-id", correlation_id.as_str()),
            domain::Header::new("traceparent", trace.traceparent.as_str()),
        ];
        if let Some(state) = &trace.tracestate {
            headers.push(domain::Header::new("tracestate", state.as_str()));
        }
        let message = CommandMessage {
            command,
            correlation_id: correlation_id.clone(),
            reply_to: self.waiters.instance().to_owned(),
            trace: Some(trace),
        };
        let value = serde_json::to_vec(&message).map_err(CommandsError::corrupt)?;
        let record = Record {
            key: order_id.as_bytes().to_vec(),
            value: Some(value),
            headers,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        };
        // One deadline bounds the whole mutation: the append and the reply.
        let deadline = started + self.timeout;
        // Unsynced: the command becomes durable with the processor's commit
        // of its reply, and nothing is answered before that commit.
        let append = self.log.append_unsynced(vec![OutgoingRecord {
            topic: self.commands.clone(),
            partition: None,
            record,
        }]);
        let mut appended_us = 0;
        let reply = async {
            append.await?;
            appended_us = started.elapsed().as_micros() as u64;
            rx.await.map_err(|_| CommandsError::Stopped)
        };
        let reply = match tokio::time::timeout_at(deadline.into(), reply).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => {
                self.waiters.forget(&command_id);
                return Err(error);
            }
            Err(_) => {
                self.waiters.forget(&command_id);
                return Err(CommandsError::Timeout {
                    command_id,
                    waited_ms: self.timeout.as_millis(),
                });
            }
        };
        let Reply {
            order_id, outcome, ..
        } = reply;
        let (answer, outcome) = match outcome {
            Outcome::Accepted {
                version,
                events,
                consistency_token,
            } => (
                Ok(Accepted {
                    order_id: order_id.clone(),
                    version,
                    events,
                    consistency_token,
                }),
                "accepted",
            ),
            Outcome::Rejected(rejection) => (Err(CommandsError::Rejected(rejection)), "rejected"),
        };
        tracing::debug!(
            order_id,
            command_id,
            correlation_id,
            trace_id,
            outcome,
            appended_us,
            answered_us = started.elapsed().as_micros() as u64,
            "command answered"
        );
        answer
    }
}

/// Hands each reply on the replies topic addressed to this gateway to
/// everyone still waiting on its command id. A reply is keyed by its
/// command id, so one nobody here waits for (another gateway's, or one a
/// lane of this node already handed over) is dropped unparsed.
fn route(waiters: &ReplyWaiters, records: Vec<StoredRecord>) {
    for stored in records {
        if !waiters.is_waiting(&stored.record.key) {
            continue;
        }
        let Some(value) = stored.record.value else {
            continue;
        };
        if let Ok(reply) = serde_json::from_slice::<Reply>(&value) {
            waiters.deliver(&reply);
        }
    }
}
