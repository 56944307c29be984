//! The sessions a SessionActor holds in memory: for each, its version, title, message count and
//! the history window that goes upstream, loaded from the database once on first use and kept
//! current as turns happen, so a prompt reaches the upstream without a database read.
//!
//! Bounded: at most `capacity` sessions per user (the least recently used leaves first), and a
//! session unused for `idle` leaves at the next sweep.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use omnichat_entity::{messages, sessions};
use uuid::Uuid;

use crate::{
    providers::{ChatMessage, MessageText, Role},
    store::LoadedSession,
};

/// One message of the history window.
#[derive(Clone, Debug)]
pub struct HistoryMessage {
    pub role: Role,
    pub content: MessageText,
    /// Its size in tokens: as the provider reported it for an answer, else an estimate
    /// ([`estimate_tokens`]). Context-window budgeting reads this.
    pub tokens: u32,
}

/// A conservative token estimate for text no tokenizer has counted: one token per 4 bytes,
/// rounded up (English averages about 4 characters a token; other scripts use more bytes each).
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// A session as held in memory.
#[derive(Debug)]
pub struct CachedSession {
    /// The `sessions.version` this node's last write left; its next write expects it.
    pub version: i64,
    pub title: String,
    /// The title is still the default, which an automatic title may replace.
    pub title_is_default: bool,
    /// Sent upstream before the history, as a system message.
    pub system_prompt: Option<MessageText>,
    /// Every message the session holds, not only the window.
    pub message_count: u64,
    /// The newest finished messages, oldest first, at most the window's length.
    history: VecDeque<HistoryMessage>,
    window: usize,
    last_used: Instant,
}

impl CachedSession {
    fn new(session: &sessions::Model, message_count: u64, window: usize) -> Self {
        CachedSession {
            version: session.version,
            title: session.title.clone(),
            title_is_default: session.title_is_default,
            system_prompt: session.system_prompt.as_deref().map(MessageText::from),
            message_count,
            history: VecDeque::new(),
            window,
            last_used: Instant::now(),
        }
    }

    /// Appends a finished message, dropping the oldest past the window. Empty text (an answer
    /// that failed before its first word) is never sent upstream, so it is not kept.
    pub fn push(&mut self, message: HistoryMessage) {
        if message.content.is_empty() {
            return;
        }
        if self.history.len() == self.window {
            self.history.pop_front();
        }
        self.history.push_back(message);
    }

    /// The newest prompt and the answer after it, if the history ends with such a pair.
    pub fn last_exchange(&self) -> Option<(&MessageText, &MessageText)> {
        let mut newest = self.history.iter().rev();
        let answer = newest.next().filter(|m| m.role == Role::Assistant)?;
        let prompt = newest.next().filter(|m| m.role == Role::User)?;
        Some((&prompt.content, &answer.content))
    }

    /// What goes upstream for `prompt`: the system prompt, the history window, then the prompt.
    /// Each provider's adapter puts the system prompt where its wire format wants it.
    pub fn upstream_messages(&self, prompt: &MessageText) -> Vec<ChatMessage> {
        let mut messages = Vec::with_capacity(self.history.len() + 2);
        if let Some(system) = &self.system_prompt {
            messages.push(ChatMessage {
                role: Role::System,
                content: system.clone(),
            });
        }
        messages.extend(self.history.iter().map(|m| ChatMessage {
            role: m.role,
            content: m.content.clone(),
        }));
        messages.push(ChatMessage {
            role: Role::User,
            content: prompt.clone(),
        });
        messages
    }
}

/// A stored message as history: only finished, non-empty user and assistant turns count.
fn history_message(m: messages::Model) -> Option<HistoryMessage> {
    if m.content.is_empty() || m.status.as_deref() == Some("streaming") {
        return None;
    }
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        _ => return None,
    };
    let tokens = m
        .completion_tokens
        .and_then(|n| u32::try_from(n).ok())
        .filter(|_| role == Role::Assistant)
        .unwrap_or_else(|| estimate_tokens(&m.content));
    Some(HistoryMessage {
        role,
        content: m.content.into(),
        tokens,
    })
}

/// The sessions of one user held in memory.
pub struct SessionCache {
    sessions: HashMap<Uuid, CachedSession>,
    window: usize,
    capacity: usize,
    idle: Duration,
}

impl SessionCache {
    pub fn new(window: usize, capacity: usize, idle: Duration) -> Self {
        SessionCache {
            sessions: HashMap::new(),
            window: window.max(1),
            capacity: capacity.max(1),
            idle,
        }
    }

    /// The session if it is held, marked as just used.
    pub fn get_mut(&mut self, session_id: Uuid) -> Option<&mut CachedSession> {
        let session = self.sessions.get_mut(&session_id)?;
        session.last_used = Instant::now();
        Some(session)
    }

    /// Holds a session just loaded from the database.
    pub fn insert_loaded(&mut self, loaded: LoadedSession) -> &mut CachedSession {
        let mut session = CachedSession::new(&loaded.session, loaded.message_count, self.window);
        for message in loaded.recent.into_iter().filter_map(history_message) {
            session.push(message);
        }
        self.insert(loaded.session.id, session)
    }

    /// Holds a session just created: nothing to load.
    pub fn insert_created(&mut self, session: &sessions::Model) {
        let cached = CachedSession::new(session, 0, self.window);
        self.insert(session.id, cached);
    }

    fn insert(&mut self, session_id: Uuid, session: CachedSession) -> &mut CachedSession {
        if self.sessions.len() >= self.capacity && !self.sessions.contains_key(&session_id) {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.sessions.remove(&oldest);
            }
        }
        self.sessions
            .entry(session_id)
            .insert_entry(session)
            .into_mut()
    }

    /// Forgets a session: it was deleted, or what is held can no longer be trusted.
    pub fn forget(&mut self, session_id: Uuid) {
        self.sessions.remove(&session_id);
    }

    /// Forgets sessions unused for the idle time, except those in `busy` (answering now).
    pub fn evict_idle(&mut self, busy: impl Fn(Uuid) -> bool) {
        let idle = self.idle;
        self.sessions
            .retain(|id, s| busy(*id) || s.last_used.elapsed() < idle);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(role: Role, content: &str) -> HistoryMessage {
        HistoryMessage {
            role,
            content: content.into(),
            tokens: estimate_tokens(content),
        }
    }

    fn session() -> sessions::Model {
        let now = chrono::Utc::now();
        sessions::Model {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            title: "t".into(),
            created_at: now,
            updated_at: now,
            version: 3,
            system_prompt: None,
            title_is_default: false,
        }
    }

    #[test]
    fn the_window_keeps_the_newest_messages_and_skips_empty_ones() {
        let mut cache = SessionCache::new(3, 10, Duration::from_secs(60));
        let row = session();
        cache.insert_created(&row);
        let held = cache.get_mut(row.id).expect("held");
        for word in ["a", "b", "", "c", "d"] {
            held.push(text(Role::User, word));
        }
        let sent: Vec<String> = held
            .upstream_messages(&"e".into())
            .into_iter()
            .map(|m| m.content.to_string())
            .collect();
        assert_eq!(sent, ["b", "c", "d", "e"]);
        assert_eq!(held.version, 3);
    }

    #[test]
    fn past_capacity_the_least_recently_used_session_leaves() {
        let mut cache = SessionCache::new(3, 2, Duration::from_secs(60));
        let (a, b, c) = (session(), session(), session());
        cache.insert_created(&a);
        cache.insert_created(&b);
        assert!(cache.get_mut(a.id).is_some());
        cache.insert_created(&c);
        assert_eq!(cache.len(), 2);
        assert!(cache.get_mut(b.id).is_none(), "b was used least recently");
        assert!(cache.get_mut(a.id).is_some() && cache.get_mut(c.id).is_some());
    }

    #[test]
    fn tokens_are_estimated_conservatively() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
