//! How a generation's answer reaches the database: the final write (tried a few times, then in
//! the background until the database is back), and the last-resort write of an answer whose
//! actor died without finishing.

use std::{sync::Arc, time::Duration};

use tracing::Instrument;

use super::actor::ChatState;
use crate::{
    budget::count_tokens,
    providers::TokenUsage,
    store::{AssistantOutcome, UsageRecord, Write},
};

/// Tries of the final write before the answer is reported as not stored.
const FINAL_WRITE_TRIES: u32 = 3;
/// The pause before trying the final write again, doubled each time.
const FINAL_WRITE_BACKOFF: Duration = Duration::from_millis(100);
/// After that, the write is tried in the background this often, for at most [`DEFERRED_FOR`]:
/// a database that comes back within minutes still gets the answer.
const DEFERRED_EVERY: Duration = Duration::from_secs(2);
const DEFERRED_FOR: Duration = Duration::from_secs(600);

impl ChatState {
    /// The answer's final state with `content`, its usage as the provider reported it or, when
    /// it reported none, estimated (and marked so): the prompt as counted when it was sent, the
    /// answer counted now. An answer that failed before any text and with no usage reported
    /// charged nothing.
    pub(super) fn outcome(
        &self,
        content: String,
        status: &'static str,
        finish_reason: Option<String>,
    ) -> AssistantOutcome {
        let reported = self.usage;
        let text = if content.is_empty() {
            &self.text
        } else {
            &content
        };
        let spent_nothing = text.is_empty()
            && reported.prompt_tokens.is_none()
            && reported.completion_tokens.is_none();
        let (usage, usage_estimated, charge) = if spent_nothing {
            (reported, false, None)
        } else {
            let usage = TokenUsage {
                prompt_tokens: Some(reported.prompt_tokens.unwrap_or(self.account.sent_tokens)),
                completion_tokens: Some(reported.completion_tokens.unwrap_or_else(|| {
                    // The answer as it ended is counted once (see `counted_answer`).
                    if text == &self.text {
                        self.counted_answer()
                    } else {
                        count_tokens(self.provider, &self.account.model, text)
                    }
                })),
            };
            let charge = UsageRecord {
                user_id: self.account.user_id,
                provider: self.provider.name().to_owned(),
                model: self.account.model.clone(),
                prompt_tokens: usage.prompt_tokens.unwrap_or(0),
                completion_tokens: usage.completion_tokens.unwrap_or(0),
            };
            (usage, reported != usage, Some(charge))
        };
        AssistantOutcome {
            content,
            status,
            finish_reason,
            usage,
            usage_estimated,
            context_omitted: self.account.context_omitted,
            charge,
        }
    }

    /// The answer's tokens, counted on first use only.
    pub(super) fn counted_answer(&self) -> u32 {
        *self
            .answer_tokens
            .get_or_init(|| count_tokens(self.provider, &self.account.model, &self.text))
    }

    /// Writes the answer's final state, trying again a few times if the database fails; true
    /// once it is committed.
    pub(super) async fn store_answer(&self, status: &'static str) -> bool {
        let finish_reason = self
            .finish_reason
            .clone()
            .or_else(|| (status != "complete").then(|| status.to_owned()));
        let outcome = Arc::new(self.outcome(self.text.clone(), status, finish_reason));
        let mut backoff = FINAL_WRITE_BACKOFF;
        for attempt in 1..=FINAL_WRITE_TRIES {
            let write = Write::FinishAnswer {
                message_id: self.message_id,
                session_id: self.session_id,
                outcome: outcome.clone(),
            };
            match self.store.writes().write(self.session_id, write).await {
                Ok(_) => return true,
                Err(err) => {
                    tracing::error!(%err, attempt, generation_id = %self.generation_id, "could not store the answer");
                    if attempt < FINAL_WRITE_TRIES {
                        self.metrics.shared().store_retry("final_answer");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        }
        self.store_later(outcome);
        false
    }

    /// Keeps trying the final write in the background, so the answer is stored once the
    /// database is back rather than left `streaming`. (If this process dies first, the next
    /// start, or another node, marks the row interrupted.)
    pub(super) fn store_later(&self, outcome: Arc<AssistantOutcome>) {
        let (store, generation_id) = (self.store.clone(), self.generation_id);
        let (message_id, session_id) = (self.message_id, self.session_id);
        let metrics = self.metrics.shared().clone();
        let task = async move {
            let deadline = tokio::time::Instant::now() + DEFERRED_FOR;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(DEFERRED_EVERY).await;
                let write = Write::FinishAnswer {
                    message_id,
                    session_id,
                    outcome: outcome.clone(),
                };
                metrics.store_retry("deferred_answer");
                if store.writes().write(session_id, write).await.is_ok() {
                    tracing::info!(%generation_id, "stored an answer once the database was back");
                    return;
                }
            }
            tracing::error!(%generation_id, "gave up storing an answer; it is marked interrupted at the next start");
        };
        tokio::spawn(task.instrument(self.span.clone()));
    }
}

/// The last word on an answer that never reached `finish`: its actor panicked, or was killed
/// because its SessionActor failed (ractor kills an exiting actor's children, skipping
/// `post_stop`). Whatever text it had is stored as `error`/`interrupted`, never left `streaming`.
impl Drop for ChatState {
    fn drop(&mut self) {
        if self.ended.is_some() || self.begin_failed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let generation_id = self.generation_id;
        let content = std::mem::take(&mut self.text);
        let write = Write::FinishAnswer {
            message_id: self.message_id,
            session_id: self.session_id,
            outcome: Arc::new(self.outcome(content, "error", Some("interrupted".into()))),
        };
        let written = self.store.writes().submit(self.session_id, write);
        runtime.spawn(async move {
            if let Ok(Err(err)) = written.await {
                tracing::error!(%err, %generation_id, "could not store an interrupted answer");
            }
        });
    }
}
