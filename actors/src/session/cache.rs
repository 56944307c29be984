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
    budget::{estimate_tokens, MESSAGE_OVERHEAD_TOKENS},
    providers::{ChatMessage, MessageText, Role},
    store::LoadedSession,
};

/// One message of the history window.
#[derive(Clone, Debug)]
pub struct HistoryMessage {
    pub role: Role,
    pub content: MessageText,
    /// Its size in tokens with the chat format's overhead: as the provider reported it for an
    /// answer, else counted once when it entered the history (see `budget`). Context-window
    /// budgeting reads this and never counts again.
    pub tokens: u32,
}

/// What goes upstream for a prompt, as fitted into the model's window.
#[derive(Debug)]
pub struct Fitted {
    pub messages: Vec<ChatMessage>,
    /// Earlier messages of the session that were left out.
    pub omitted: u32,
    /// The tokens of everything sent, as counted here.
    pub tokens: u32,
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
    /// Every message the session holds, not only the window (earlier versions too: the
    /// session's size limit counts them).
    pub message_count: u64,
    /// How many of those are earlier versions a regenerate or an edit replaced: never history.
    pub superseded_count: u64,
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
            superseded_count: 0,
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

    /// Takes the session's last prompt and its answer out of the history, for a regenerate or an
    /// edit that replaces them (they become earlier versions): the answer when the history ends
    /// with one (an empty answer never entered it), then the prompt.
    pub fn drop_last_exchange(&mut self) {
        if self
            .history
            .back()
            .is_some_and(|m| m.role == Role::Assistant)
        {
            self.history.pop_back();
        }
        if self.history.back().is_some_and(|m| m.role == Role::User) {
            self.history.pop_back();
        }
    }

    /// The newest prompt and the answer after it, if the history ends with such a pair.
    pub fn last_exchange(&self) -> Option<(&MessageText, &MessageText)> {
        let mut newest = self.history.iter().rev();
        let answer = newest.next().filter(|m| m.role == Role::Assistant)?;
        let prompt = newest.next().filter(|m| m.role == Role::User)?;
        Some((&prompt.content, &answer.content))
    }

    /// What goes upstream for `prompt` (`prompt_tokens` long) within `room` tokens: the
    /// session's system prompt (each provider's adapter puts it where its wire format wants it)
    /// and the system messages, then the newest turns that fit beside the prompt, then the
    /// prompt. The
    /// caller has checked that the prompt fits alone. A kept run never starts with an answer
    /// whose question was left out (Anthropic refuses a conversation that opens that way).
    pub fn fit_upstream(&self, prompt: &MessageText, prompt_tokens: u32, room: u32) -> Fitted {
        let session_prompt_tokens = self.system_prompt.as_ref().map_or(0, |p| {
            estimate_tokens(p).saturating_add(MESSAGE_OVERHEAD_TOKENS)
        });
        let system_tokens: u32 = self
            .history
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.tokens)
            .fold(session_prompt_tokens, u32::saturating_add);
        let mut left = room
            .saturating_sub(prompt_tokens)
            .saturating_sub(system_tokens);
        let mut start = self.history.len();
        for (i, m) in self.history.iter().enumerate().rev() {
            if m.role == Role::System {
                continue;
            }
            if m.tokens > left {
                break;
            }
            left -= m.tokens;
            start = i;
        }
        let opens_with_answer = |start: usize| {
            self.history
                .iter()
                .skip(start)
                .find(|m| m.role != Role::System)
                .is_some_and(|m| m.role == Role::Assistant)
        };
        if start < self.history.len() && opens_with_answer(start) {
            start += 1;
        }
        let kept = self
            .history
            .iter()
            .enumerate()
            .filter(|(i, m)| *i >= start || m.role == Role::System)
            .map(|(_, m)| m);
        let mut messages = Vec::with_capacity(self.history.len() - start + 2);
        let mut tokens = prompt_tokens.saturating_add(session_prompt_tokens);
        if let Some(system) = &self.system_prompt {
            messages.push(ChatMessage {
                role: Role::System,
                content: system.clone(),
            });
        }
        for m in kept {
            tokens = tokens.saturating_add(m.tokens);
            messages.push(ChatMessage {
                role: m.role,
                content: m.content.clone(),
            });
        }
        // The session's system prompt is no message of the session.
        let sent_earlier =
            u64::try_from(messages.len() - usize::from(self.system_prompt.is_some()))
                .unwrap_or(u64::MAX);
        messages.push(ChatMessage {
            role: Role::User,
            content: prompt.clone(),
        });
        Fitted {
            messages,
            omitted: u32::try_from(
                self.message_count
                    .saturating_sub(self.superseded_count)
                    .saturating_sub(sent_earlier),
            )
            .unwrap_or(u32::MAX),
            tokens,
        }
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
    // Which model the next turn goes to is not known here: the estimate errs on the safe side.
    let tokens = m
        .completion_tokens
        .and_then(|n| u32::try_from(n).ok())
        .filter(|_| role == Role::Assistant && m.usage_estimated != Some(true))
        .unwrap_or_else(|| estimate_tokens(&m.content))
        .saturating_add(MESSAGE_OVERHEAD_TOKENS);
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
        session.superseded_count = loaded.superseded_count;
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
            .fit_upstream(&"e".into(), 1, 1_000)
            .messages
            .into_iter()
            .map(|m| m.content.to_string())
            .collect();
        assert_eq!(sent, ["b", "c", "d", "e"]);
        assert_eq!(held.version, 3);
    }

    #[test]
    fn the_system_prompt_goes_first_and_counts_against_the_room() {
        let mut cache = SessionCache::new(10, 10, Duration::from_secs(60));
        let mut row = session();
        row.system_prompt = Some("be brief".into());
        cache.insert_created(&row);
        let held = cache.get_mut(row.id).expect("held");
        for (role, words) in [(Role::User, "aaaa"), (Role::Assistant, "bbbb")] {
            held.push(text(role, words));
        }
        held.message_count = 2;
        let prompt_cost = estimate_tokens("be brief") + MESSAGE_OVERHEAD_TOKENS;
        let roomy = held.fit_upstream(&"e".into(), 1, 1_000);
        let roles: Vec<Role> = roomy.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert_eq!(roomy.messages[0].content.to_string(), "be brief");
        assert_eq!((roomy.omitted, roomy.tokens), (0, 1 + prompt_cost + 2));
        // Room for the prompt and the system prompt only: the turns are left out, not it.
        let tight = held.fit_upstream(&"e".into(), 1, 1 + prompt_cost);
        let sent: Vec<String> = tight
            .messages
            .iter()
            .map(|m| m.content.to_string())
            .collect();
        assert_eq!(sent, ["be brief", "e"]);
        assert_eq!(tight.omitted, 2);
    }

    #[test]
    fn the_newest_turns_that_fit_go_upstream_and_the_rest_are_counted_out() {
        let mut cache = SessionCache::new(10, 10, Duration::from_secs(60));
        let row = session();
        cache.insert_created(&row);
        let held = cache.get_mut(row.id).expect("held");
        held.push(text(Role::System, "sys"));
        for (role, words) in [
            (Role::User, "aaaa"),
            (Role::Assistant, "bbbbbbbb"),
            (Role::User, "cccc"),
            (Role::Assistant, "dddd"),
        ] {
            held.push(text(role, words));
        }
        held.message_count = 5;
        // Room for the prompt (1), the system message (1) and three one-token turns; "bbbbbbbb"
        // (2 tokens) does not fit, and an answer never opens the kept turns.
        let fitted = held.fit_upstream(&"e".into(), 1, 5);
        let sent: Vec<String> = fitted
            .messages
            .iter()
            .map(|m| m.content.to_string())
            .collect();
        assert_eq!(sent, ["sys", "cccc", "dddd", "e"]);
        assert_eq!((fitted.omitted, fitted.tokens), (2, 4));
        let alone = held.fit_upstream(&"e".into(), 1, 2);
        assert_eq!(alone.messages.len(), 2, "the system message and the prompt");
        assert_eq!(alone.omitted, 4);
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
}
