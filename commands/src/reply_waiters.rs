//! The commands this node's gateway is waiting on, and the two ways their
//! replies reach them.
//!
//! Every reply is written to the replies topic in the transaction that
//! decides its command, and the gateway's router reads it from there. A
//! command decided by a lane of this same node is also handed its reply by
//! that lane directly, as soon as the transaction has committed: the
//! transaction is durable then (Kafka's `commit_transaction` returned, or
//! the embedded log's flush), so nothing is answered earlier than before,
//! but the answer no longer waits for the reply's own round trip through
//! the log (the commit markers and a read_committed fetch on Kafka, about
//! 3.7 ms of a command at concurrency 1; about 0.2 ms embedded). Whichever
//! copy comes first answers every waiter of that command id; the other finds
//! nobody waiting and is dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::messages::Reply;
use crate::CommandsError;

/// The waiters of one gateway, under the id its commands carry as `reply_to`.
#[derive(Debug)]
pub struct ReplyWaiters {
    instance: String,
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<Reply>>>>,
}

impl ReplyWaiters {
    pub fn new(instance: String) -> Self {
        Self {
            instance,
            waiting: Mutex::default(),
        }
    }

    /// The id replies to these waiters are addressed to.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Registers a wait for `command_id`'s reply (before the command is sent,
    /// so no reply can pass unseen).
    pub fn wait_for(&self, command_id: &str) -> Result<oneshot::Receiver<Reply>, CommandsError> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .map_err(|_| CommandsError::Stopped)?
            .entry(command_id.to_owned())
            .or_default()
            .push(tx);
        Ok(rx)
    }

    /// Drops the waits on `command_id` whose receivers are gone (timed out).
    pub fn forget(&self, command_id: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            if let Some(list) = waiting.get_mut(command_id) {
                list.retain(|tx| !tx.is_closed());
                if list.is_empty() {
                    waiting.remove(command_id);
                }
            }
        }
    }

    /// Hands a reply to everyone waiting on its command id, if it is
    /// addressed here; answers how many were waiting.
    pub fn deliver(&self, reply: &Reply) -> usize {
        if reply.reply_to != self.instance {
            return 0;
        }
        let Ok(mut waiting) = self.waiting.lock() else {
            return 0;
        };
        let waiters = waiting.remove(&reply.command_id).unwrap_or_default();
        drop(waiting);
        let count = waiters.len();
        for tx in waiters {
            let _ = tx.send(reply.clone());
        }
        count
    }

    /// Whether anyone waits on `command_id` (the replies topic's record
    /// key), so the router parses only the replies someone still needs.
    pub fn is_waiting(&self, command_id: &[u8]) -> bool {
        let Ok(command_id) = std::str::from_utf8(command_id) else {
            return false;
        };
        self.waiting
            .lock()
            .is_ok_and(|waiting| waiting.contains_key(command_id))
    }

    /// How many command ids are waited on.
    pub fn len(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::messages::Outcome;
    use crate::RejectionReply;

    fn reply(command_id: &str, to: &str) -> Reply {
        Reply {
            command_id: command_id.into(),
            order_id: "o".into(),
            reply_to: to.into(),
            outcome: Outcome::Rejected(RejectionReply::from(&domain::Rejection::OrderNotFound)),
        }
    }

    #[test]
    fn the_first_copy_answers_every_waiter_and_the_second_finds_none() {
        let waiters = ReplyWaiters::new("me".into());
        let mut a = waiters.wait_for("c1").unwrap();
        let mut b = waiters.wait_for("c1").unwrap();
        assert!(waiters.is_waiting(b"c1"));
        assert!(!waiters.is_waiting(b"c2"));
        assert_eq!(waiters.deliver(&reply("c1", "me")), 2);
        assert!(!waiters.is_waiting(b"c1"));
        assert_eq!(a.try_recv().unwrap().command_id, "c1");
        assert_eq!(b.try_recv().unwrap().command_id, "c1");
        assert_eq!(waiters.deliver(&reply("c1", "me")), 0, "the topic's copy");
        assert!(waiters.is_empty());
    }

    #[test]
    fn replies_to_another_gateway_or_unknown_commands_are_ignored() {
        let waiters = ReplyWaiters::new("me".into());
        let mut rx = waiters.wait_for("c1").unwrap();
        assert_eq!(waiters.deliver(&reply("c1", "someone-else")), 0);
        assert_eq!(waiters.deliver(&reply("c2", "me")), 0);
        assert!(rx.try_recv().is_err(), "still waiting");
        assert_eq!(waiters.len(), 1);
        drop(rx);
        waiters.forget("c1");
        assert!(waiters.is_empty());
    }
}
