//! The writes a chat makes, as values the group-commit writer can queue and apply inside its
//! batch transaction. Each one that changes a session bumps `sessions.version`.
//!
//! `apply` runs them through sea-orm, for PostgreSQL and an in-memory SQLite database; the
//! writer of a SQLite file applies the same writes with rusqlite (`sqlite_writer`).
//!
//! A write alone in its batch runs without a transaction, statement by statement (half the round
//! trips to the database on the path to the first token), so each is ordered to be safe if the
//! process dies between its statements: the version is bumped first, and a bump with nothing
//! after it only makes other nodes reload the session.

use chrono::{DateTime, Utc};
use omnichat_entity::{messages, sessions};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Set,
};
use uuid::Uuid;

use super::{
    messages::{AssistantOutcome, NewAssistantMessage},
    search_index::{index_pending, INDEX_BATCH},
    sqlite_writes,
    usage::{begin_refused_by_quota, claim_prompt_and_bump, statement, RECORD_USAGE},
};
use crate::budget::QuotaCheck;

/// A prompt and the `streaming` row of its answer, written only if the session is still at the
/// version the writer last saw (so a change made by another node is noticed here, not missed).
#[derive(Clone, Debug)]
pub struct BeginAnswer {
    pub user_id: Uuid,
    pub expected_version: i64,
    /// Older than the answer's id: ids break the tie of equal timestamps.
    pub prompt_id: Uuid,
    pub prompt: String,
    pub answer: NewAssistantMessage,
    /// The node that runs the generation.
    pub node: String,
    pub at: DateTime<Utc>,
    /// The user's quotas. On PostgreSQL, which other nodes may share, they are checked against
    /// the stored counters and the prompt counted in the same statement as the session's bump
    /// (a refusal writes nothing). On SQLite, where this node is alone and its SessionActor's
    /// counters are the truth, the prompt is only counted, in the same round trip.
    pub quota: QuotaCheck,
    /// On a database nodes share: the user's answers streaming on all live nodes are counted
    /// here, and the turn refused at the limit (see `answer_limit`). `None` on SQLite, where this
    /// node's memory is the whole count.
    pub live_limit: Option<LiveLimit>,
    /// A regenerate or an edit: the messages it replaces, marked superseded in the same write
    /// as the new answer's begin (so no replaced answer is ever left without its replacement).
    /// Empty for a plain turn.
    pub supersede: Vec<Uuid>,
    /// False for a regenerate: `prompt_id` names the stored prompt answered again, and no user
    /// row is written.
    pub new_prompt: bool,
}

/// At most `most` answers of a user streaming at once on the nodes alive at `now`.
#[derive(Clone, Copy, Debug)]
pub struct LiveLimit {
    pub most: usize,
    pub now: DateTime<Utc>,
}

/// One write the writer applies.
#[derive(Clone, Debug)]
pub enum Write {
    CreateSession(sessions::Model),
    /// A client's change: a new title (never replaced by an automatic one afterwards), a new
    /// system prompt (`Some(None)` removes it), or both.
    Update {
        user_id: Uuid,
        session_id: Uuid,
        title: Option<String>,
        system_prompt: Option<Option<String>>,
        at: DateTime<Utc>,
    },
    /// An automatic title, written only while the title is still the default.
    AutoTitle {
        user_id: Uuid,
        session_id: Uuid,
        title: String,
    },
    Delete {
        user_id: Uuid,
        session_id: Uuid,
    },
    BeginAnswer(Box<BeginAnswer>),
    /// An answer's final text, status and usage (a session deleted meanwhile is no error).
    FinishAnswer {
        message_id: Uuid,
        session_id: Uuid,
        /// Shared: a retried write copies no answer text.
        outcome: std::sync::Arc<AssistantOutcome>,
    },
    /// SQLite: the messages queued for the full-text index go in (see `search_index`).
    IndexSearch,
}

/// What a write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// No session with that id belongs to that user.
    Missing,
    /// The session is not at the expected version: it changed elsewhere, or is gone.
    Stale,
    /// The user's quota refused the prompt: nothing was written.
    Limited,
    /// Nothing written: the user has as many answers streaming as its [`LiveLimit`] allows.
    TooManyAnswers,
}

impl Write {
    /// True when the write's statements must share a transaction even alone in its batch (the
    /// per-user lock of a limited turn holds until the commit).
    pub(super) fn needs_transaction(&self) -> bool {
        // A replacing begin takes several statements that must land together.
        matches!(self, Write::BeginAnswer(begin)
            if begin.live_limit.is_some() || !begin.supersede.is_empty())
    }
}

/// Applies `write` on `db`: the batch's transaction, or the connection itself for a write alone.
pub(super) async fn apply<C: ConnectionTrait>(db: &C, write: &Write) -> Result<Written, DbErr> {
    match write {
        Write::CreateSession(row) => {
            let row = sessions::ActiveModel {
                id: Set(row.id),
                user_id: Set(row.user_id),
                title: Set(row.title.clone()),
                created_at: Set(row.created_at),
                updated_at: Set(row.updated_at),
                version: Set(row.version),
                system_prompt: Set(row.system_prompt.clone()),
                title_is_default: Set(row.title_is_default),
            };
            sessions::Entity::insert(row)
                .exec_without_returning(db)
                .await?;
            Ok(Written::Done)
        }
        Write::Update {
            user_id,
            session_id,
            title,
            system_prompt,
            at,
        } => {
            let mut update = bump(*session_id, *at).filter(sessions::Column::UserId.eq(*user_id));
            if let Some(title) = title {
                update = update
                    .col_expr(sessions::Column::Title, title.clone().into())
                    .col_expr(sessions::Column::TitleIsDefault, false.into());
            }
            if let Some(prompt) = system_prompt {
                update = update.col_expr(sessions::Column::SystemPrompt, prompt.clone().into());
            }
            Ok(found(update.exec(db).await?.rows_affected))
        }
        Write::AutoTitle {
            user_id,
            session_id,
            title,
        } => {
            // Not activity: the session keeps its place in the list.
            let result = sessions::Entity::update_many()
                .col_expr(
                    sessions::Column::Version,
                    Expr::col(sessions::Column::Version).add(1),
                )
                .col_expr(sessions::Column::Title, title.clone().into())
                .col_expr(sessions::Column::TitleIsDefault, false.into())
                .filter(sessions::Column::Id.eq(*session_id))
                .filter(sessions::Column::UserId.eq(*user_id))
                .filter(sessions::Column::TitleIsDefault.eq(true))
                .exec(db)
                .await?;
            Ok(found(result.rows_affected))
        }
        Write::Delete {
            user_id,
            session_id,
        } => {
            let result = sessions::Entity::delete_many()
                .filter(sessions::Column::Id.eq(*session_id))
                .filter(sessions::Column::UserId.eq(*user_id))
                .exec(db)
                .await?;
            Ok(found(result.rows_affected))
        }
        Write::BeginAnswer(begin) => begin_answer(db, begin).await,
        Write::FinishAnswer {
            message_id,
            session_id,
            outcome,
        } => {
            bump(*session_id, Utc::now()).exec(db).await?;
            finish_answer(db, *message_id, outcome).await?;
            Ok(Written::Done)
        }
        Write::IndexSearch => {
            // A backlog past one pass (a search after a long outage of the indexer) is worked
            // off pass by pass.
            while index_pending(db).await? >= INDEX_BATCH {}
            Ok(Written::Done)
        }
    }
}

/// [`Written::Missing`] when no row matched, else [`Written::Done`].
pub(super) fn found(rows: u64) -> Written {
    if rows == 0 {
        Written::Missing
    } else {
        Written::Done
    }
}

/// An update of one session that marks activity at `at` and bumps its version.
fn bump(session_id: Uuid, at: DateTime<Utc>) -> sea_orm::UpdateMany<sessions::Entity> {
    sessions::Entity::update_many()
        .col_expr(
            sessions::Column::Version,
            Expr::col(sessions::Column::Version).add(1),
        )
        .col_expr(sessions::Column::UpdatedAt, at.into())
        .filter(sessions::Column::Id.eq(session_id))
}

/// The begin on PostgreSQL and on an in-memory SQLite database (a SQLite file has its own
/// writer: `sqlite_writer`).
async fn begin_answer<C: ConnectionTrait>(db: &C, begin: &BeginAnswer) -> Result<Written, DbErr> {
    if let Some(limit) = begin.live_limit {
        if super::answer_limit::at_limit(db, begin.user_id, limit).await? {
            return Ok(Written::TooManyAnswers);
        }
    }
    if db.get_database_backend() == DbBackend::Sqlite {
        if !sqlite_writes::bump_and_count_prompt(db, begin).await? {
            return Ok(Written::Stale);
        }
    } else if !claim_prompt_and_bump(db, begin, &begin.quota).await? {
        // The prompt is counted (within the quotas) in the bump's own statement; a refused
        // prompt leaves the session untouched.
        if begin_refused_by_quota(db, begin).await? {
            return Ok(Written::Limited);
        }
        return Ok(Written::Stale);
    }
    let answer = &begin.answer;
    if !begin.supersede.is_empty() {
        // The version check above is what makes these the session's current last messages: the
        // SessionActor chose them at the version this write expected.
        messages::Entity::update_many()
            .col_expr(messages::Column::SupersededAt, Some(begin.at).into())
            .filter(messages::Column::Id.is_in(begin.supersede.iter().copied()))
            .filter(messages::Column::SessionId.eq(answer.session_id))
            .filter(messages::Column::SupersededAt.is_null())
            .exec(db)
            .await?;
    }
    let user = messages::ActiveModel {
        id: Set(begin.prompt_id),
        session_id: Set(answer.session_id),
        role: Set("user".into()),
        content: Set(begin.prompt.clone()),
        status: Set(None),
        provider: Set(None),
        model: Set(None),
        generation_id: Set(None),
        finish_reason: Set(None),
        prompt_tokens: Set(None),
        completion_tokens: Set(None),
        usage_estimated: Set(None),
        context_omitted: Set(None),
        created_at: Set(begin.at),
        node: Set(None),
        superseded_at: Set(None),
    };
    let assistant = messages::ActiveModel {
        id: Set(answer.id),
        session_id: Set(answer.session_id),
        role: Set("assistant".into()),
        content: Set(String::new()),
        status: Set(Some("streaming".into())),
        provider: Set(Some(answer.provider.clone())),
        model: Set(Some(answer.model.clone())),
        generation_id: Set(Some(answer.generation_id)),
        finish_reason: Set(None),
        prompt_tokens: Set(None),
        completion_tokens: Set(None),
        usage_estimated: Set(None),
        context_omitted: Set(None),
        created_at: Set(begin.at),
        node: Set(Some(begin.node.clone())),
        superseded_at: Set(None),
    };
    let rows = if begin.new_prompt {
        vec![user, assistant]
    } else {
        vec![assistant]
    };
    messages::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(Written::Done)
}

async fn finish_answer<C: ConnectionTrait>(
    db: &C,
    message_id: Uuid,
    outcome: &AssistantOutcome,
) -> Result<(), DbErr> {
    let to_i32 = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    messages::Entity::update_many()
        .col_expr(messages::Column::Content, outcome.content.clone().into())
        .col_expr(
            messages::Column::Status,
            Some(outcome.status.to_owned()).into(),
        )
        .col_expr(
            messages::Column::FinishReason,
            outcome.finish_reason.clone().into(),
        )
        .col_expr(
            messages::Column::PromptTokens,
            to_i32(outcome.usage.prompt_tokens).into(),
        )
        .col_expr(
            messages::Column::CompletionTokens,
            to_i32(outcome.usage.completion_tokens).into(),
        )
        .col_expr(
            messages::Column::UsageEstimated,
            Some(outcome.usage_estimated).into(),
        )
        .col_expr(
            messages::Column::ContextOmitted,
            Some(i32::try_from(outcome.context_omitted).unwrap_or(i32::MAX)).into(),
        )
        .filter(messages::Column::Id.eq(message_id))
        .exec(db)
        .await?;
    if let Some(charge) = &outcome.charge {
        let backend = db.get_database_backend();
        db.execute_raw(statement(backend, RECORD_USAGE, charge.values(Utc::now())))
            .await?;
    }
    Ok(())
}
