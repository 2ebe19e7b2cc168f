//! [`AgentRouter`]: the guest agent machine and the calls waiting on it,
//! as the engine drives them.

use crate::answer::Answering;
use crate::engine::Conversation;
use bytes::Bytes;
use qmp_proto::agent::{Agent, AgentOutput};
use qmp_proto::router::Waiter;
use qmp_proto::{End, Failure, RawJson, RequestId, SendError};
use serde::Serialize;
use std::collections::HashMap;

/// The answer a call waits for.
pub(crate) type AgentAnswer = Answering<Result<RawJson, Failure>>;

/// The machine, the calls waiting for their replies, and how the channel
/// ended.
pub(crate) struct AgentRouter {
    pub(crate) agent: Agent,
    calls: HashMap<u64, AgentAnswer>,
    end: Option<End>,
    /// How many syncs have been answered.
    pub(crate) syncs_answered: u64,
}

impl AgentRouter {
    pub(crate) fn new(agent: Agent) -> Self {
        AgentRouter {
            agent,
            calls: HashMap::new(),
            end: None,
            syncs_answered: 0,
        }
    }

    /// Queues a command whose answer goes to `reply_to`; `None` if it was
    /// refused (the refusal is delivered already).
    pub(crate) fn execute<A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: &A,
        reply_to: AgentAnswer,
    ) -> Option<RequestId> {
        match self.agent.execute(name, arguments) {
            Ok(id) => {
                self.calls.insert(id.get(), reply_to);
                Some(id)
            }
            Err(SendError::Closed) => {
                let end = self.end.clone().unwrap_or(End::Local);
                reply_to.deliver(Err(Failure::Ended(end)));
                None
            }
            Err(e) => {
                reply_to.deliver(Err(Failure::Rejected(e)));
                None
            }
        }
    }

    /// The caller of `id` stopped waiting.
    pub(crate) fn cancel(&mut self, id: RequestId) {
        self.calls.remove(&id.get());
        self.agent.cancel(id);
    }
}

impl Conversation for AgentRouter {
    fn receive(&mut self, bytes: &[u8]) {
        self.agent.receive(bytes);
    }

    fn receive_eof(&mut self) {
        self.agent.receive_eof();
    }

    fn fail_transport(&mut self, detail: String) {
        self.agent.fail_transport(detail);
    }

    fn close(&mut self) {
        self.agent.close();
    }

    fn handle_outputs(&mut self) {
        while let Some(output) = self.agent.poll_output() {
            match output {
                AgentOutput::Synced { .. } => self.syncs_answered += 1,
                AgentOutput::Reply(reply) => {
                    if let Some(call) = self.calls.remove(&reply.id.get()) {
                        call.deliver(reply.result.map_err(Failure::Qmp));
                    }
                }
                AgentOutput::End(end) => {
                    for (_, call) in self.calls.drain() {
                        call.deliver(Err(Failure::Ended(end.clone())));
                    }
                    self.end = Some(end);
                }
            }
        }
    }

    fn transmit_with(
        &mut self,
        unsent: &mut Option<Bytes>,
        try_write: impl FnMut(&[u8]) -> Option<usize>,
    ) -> bool {
        let agent = &mut self.agent;
        qmp_proto::framing::write_in_order(unsent, || agent.poll_transmit(), try_write)
            || self.end.is_some()
    }

    fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    fn is_held_up(&self) -> bool {
        false
    }

    fn has_room(&self) -> bool {
        self.agent.queued() < self.agent.config().max_queued
    }
}
