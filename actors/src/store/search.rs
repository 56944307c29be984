//! Full-text search over one user's sessions: titles and message text, ranked by the database's
//! own relevance (FTS5 `bm25` on SQLite, `ts_rank` on PostgreSQL), one hit per session with a
//! short snippet of its best match. The index itself is kept by the schema (see the migrations
//! `create_search_index` and `defer_message_indexing`); on SQLite a search first has the writer
//! index the messages queued since the last pass.

use std::collections::HashMap;

use omnichat_entity::sessions;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement, Value,
};
use uuid::Uuid;

use super::Store;

/// A title match counts this much more than a match in one message.
const TITLE_WEIGHT: f64 = 2.0;
/// The longest snippet returned, in characters.
const SNIPPET_MAX_CHARS: usize = 200;

/// One session found, with what to show of why.
#[derive(Debug)]
pub struct SearchHit {
    pub session: sessions::Model,
    pub snippet: String,
}

/// `CROSS JOIN` makes SQLite run the full-text match once and join outward from its hits; left
/// to itself it may walk the user's sessions and run the match once per session instead
/// (seconds with 10,000 sessions).
const SQLITE_RANK: &str = "\
WITH hits AS ( \
  SELECT m.session_id AS sid, bm25(messages_fts) AS score, m.id AS mid \
  FROM messages_fts CROSS JOIN messages m ON m.rowid = messages_fts.rowid \
  CROSS JOIN sessions s ON s.id = m.session_id \
  WHERE messages_fts MATCH ? AND s.user_id = ? \
  UNION ALL \
  SELECT s.id, bm25(sessions_fts) * ?, NULL \
  FROM sessions_fts CROSS JOIN sessions s ON s.rowid = sessions_fts.rowid \
  WHERE sessions_fts MATCH ? AND s.user_id = ? \
) \
SELECT sid, min(score) AS score, mid FROM hits GROUP BY sid \
ORDER BY score ASC, sid DESC LIMIT ? OFFSET ?";

const POSTGRES_RANK: &str = "\
WITH q AS (SELECT plainto_tsquery('simple', $1) AS q), \
hits AS ( \
  SELECT m.session_id AS sid, ts_rank(m.search, q.q)::float8 AS score, m.id AS mid \
  FROM q, messages m JOIN sessions s ON s.id = m.session_id \
  WHERE m.search @@ q.q AND s.user_id = $2 \
  UNION ALL \
  SELECT s.id, ts_rank(s.search, q.q)::float8 * $3, NULL \
  FROM q, sessions s WHERE s.search @@ q.q AND s.user_id = $2 \
) \
SELECT sid, score, mid FROM ( \
  SELECT sid, score, mid, row_number() OVER (PARTITION BY sid ORDER BY score DESC) AS n \
  FROM hits) best \
WHERE n = 1 ORDER BY score DESC, sid DESC LIMIT $4 OFFSET $5";

impl Store {
    /// The sessions of `user_id` matching every word of `terms` (already split into words),
    /// best first: `limit` of them after skipping `offset`.
    pub async fn search_sessions(
        &self,
        user_id: Uuid,
        terms: &[String],
        limit: u64,
        offset: u64,
    ) -> Result<Vec<SearchHit>, DbErr> {
        let backend = self.conn().get_database_backend();
        let (limit, offset) = (
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(offset).unwrap_or(i64::MAX),
        );
        let (sql, values, query): (&str, Vec<Value>, String) = match backend {
            DbBackend::Postgres => {
                let query = terms.join(" ");
                let values = vec![
                    query.clone().into(),
                    user_id.into(),
                    TITLE_WEIGHT.into(),
                    limit.into(),
                    offset.into(),
                ];
                (POSTGRES_RANK, values, query)
            }
            _ => {
                // Messages are indexed in batches: the ones written since the last go in first,
                // so the search sees everything stored before it began.
                self.writes()
                    .write(Uuid::nil(), super::Write::IndexSearch)
                    .await
                    .map_err(|err| match err {
                        super::WriteError::Database(err) => err,
                        other => DbErr::Custom(other.to_string()),
                    })?;
                let query = fts5_query(terms);
                let values = vec![
                    query.clone().into(),
                    user_id.into(),
                    TITLE_WEIGHT.into(),
                    query.clone().into(),
                    user_id.into(),
                    limit.into(),
                    offset.into(),
                ];
                (SQLITE_RANK, values, query)
            }
        };
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let mut ranked: Vec<(Uuid, Option<Uuid>)> = Vec::with_capacity(rows.len());
        for row in rows {
            ranked.push((row.try_get("", "sid")?, row.try_get("", "mid")?));
        }
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ranked.iter().map(|(sid, _)| *sid).collect();
        let message_ids: Vec<Uuid> = ranked.iter().filter_map(|(_, mid)| *mid).collect();
        let (found, snippets) = tokio::join!(
            sessions::Entity::find()
                .filter(sessions::Column::UserId.eq(user_id))
                .filter(sessions::Column::Id.is_in(ids))
                .all(self.conn()),
            self.snippets(backend, &query, &message_ids),
        );
        let mut found: HashMap<Uuid, sessions::Model> =
            found?.into_iter().map(|s| (s.id, s)).collect();
        let snippets = snippets?;
        // A session deleted between the two reads is simply left out.
        Ok(ranked
            .into_iter()
            .filter_map(|(sid, mid)| {
                let session = found.remove(&sid)?;
                let snippet = mid
                    .and_then(|mid| snippets.get(&mid).cloned())
                    .unwrap_or_else(|| session.title.clone());
                Some(SearchHit {
                    session,
                    snippet: shorten(&snippet),
                })
            })
            .collect())
    }

    /// The snippet of each message in `ids` around the words of `query`: only the page's best
    /// messages, never every match.
    async fn snippets(
        &self,
        backend: DbBackend,
        query: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, String>, DbErr> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut values: Vec<Value> = vec![query.into()];
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let sql = match backend {
            DbBackend::Postgres => {
                let list: Vec<String> = (2..=ids.len() + 1).map(|n| format!("${n}")).collect();
                format!(
                    "SELECT id, ts_headline('simple', left(content, 100000), \
                     plainto_tsquery('simple', $1), 'MaxWords=16, MinWords=6, MaxFragments=1, \
                     StartSel=\"\", StopSel=\"\", FragmentDelimiter=\" … \"') AS snippet \
                     FROM messages WHERE id IN ({})",
                    list.join(", ")
                )
            }
            _ => format!(
                "SELECT m.id AS id, snippet(messages_fts, 0, '', '', '…', 16) AS snippet \
                 FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid \
                 WHERE messages_fts MATCH ? AND m.id IN ({})",
                vec!["?"; ids.len()].join(", ")
            ),
        };
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let mut snippets = HashMap::with_capacity(rows.len());
        for row in rows {
            snippets.insert(row.try_get("", "id")?, row.try_get("", "snippet")?);
        }
        Ok(snippets)
    }
}

/// An FTS5 query matching every term: each quoted as a string, so no word of a client's can be
/// read as FTS5 syntax (`OR`, `NEAR`, `*`, a column filter).
fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most [`SNIPPET_MAX_CHARS`] characters, on one line.
fn shorten(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(SNIPPET_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{
        test_writes::{self, begin},
        AssistantOutcome, Write,
    };

    /// FTS5 checks its index against the tables, row by row (`rank` 1: the content too), once
    /// the queued messages are in.
    async fn index_is_consistent(store: &Store) {
        store
            .writes()
            .write(Uuid::nil(), Write::IndexSearch)
            .await
            .unwrap();
        store
            .conn()
            .execute_unprepared(
                "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1); \
                 INSERT INTO sessions_fts(sessions_fts, rank) VALUES ('integrity-check', 1);",
            )
            .await
            .expect("the FTS5 index matches the tables");
    }

    /// A migrated in-memory store with one user.
    async fn store_with_user() -> (Store, Uuid) {
        test_writes::store_with_user("sqlite::memory:").await
    }

    #[tokio::test]
    async fn the_sqlite_index_follows_turns_renames_and_deletes() {
        let (store, user_id) = store_with_user().await;
        let user = store.user_by_id(user_id).await.unwrap().unwrap();
        let session = store
            .insert_session(user.id, "New Chat", true, None)
            .await
            .unwrap();
        let (begin, answer_id) = begin(user.id, 0, "where do quokkas live", session.id);
        store.writes().write(session.id, begin).await.unwrap();
        // The prompt is queued for the index, not in it yet: the search catches the index up.
        let terms = |t: &str| vec![t.to_owned()];
        let found = store
            .search_sessions(user.id, &terms("quokkas"), 10, 0)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let finish = Write::FinishAnswer {
            message_id: answer_id,
            session_id: session.id,
            outcome: Arc::new(AssistantOutcome {
                content: "on Rottnest island".into(),
                status: "complete",
                finish_reason: None,
                usage: Default::default(),
                usage_estimated: false,
                context_omitted: 0,
                charge: None,
            }),
        };
        store.writes().write(session.id, finish).await.unwrap();
        // (Only now: an answer still streaming is not indexed yet, by design.)
        index_is_consistent(&store).await;
        let found = store
            .search_sessions(user.id, &terms("rottnest"), 10, 0)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].snippet, "on Rottnest island");

        store
            .update_session(user.id, session.id, Some("Island trip".into()), None)
            .await
            .unwrap();
        index_is_consistent(&store).await;
        let found = store
            .search_sessions(user.id, &terms("island"), 10, 0)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "the title and the answer: one session");
        assert!(store
            .search_sessions(user.id, &terms("chat"), 10, 0)
            .await
            .unwrap()
            .is_empty());

        store.delete_session(user.id, session.id).await.unwrap();
        index_is_consistent(&store).await;
        assert!(store
            .search_sessions(user.id, &terms("quokkas"), 10, 0)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn messages_deleted_before_they_were_indexed_leave_the_index_whole() {
        let (store, user_id) = store_with_user().await;
        let (kept, gone) = (
            store
                .insert_session(user_id, "kept", true, None)
                .await
                .unwrap(),
            store
                .insert_session(user_id, "gone", true, None)
                .await
                .unwrap(),
        );
        for (session, prompt) in [(&kept, "wombats dig"), (&gone, "wombats sleep")] {
            let (write, _) = begin(user_id, 0, prompt, session.id);
            store.writes().write(session.id, write).await.unwrap();
        }
        // Its messages are still queued (the streaming answer at least) when the session goes.
        store.delete_session(user_id, gone.id).await.unwrap();
        store
            .conn()
            .execute_unprepared("UPDATE messages SET status = 'stopped' WHERE status = 'streaming'")
            .await
            .unwrap();
        index_is_consistent(&store).await;
        let found = store
            .search_sessions(user_id, &["wombats".to_owned()], 10, 0)
            .await
            .unwrap();
        let titles: Vec<_> = found.iter().map(|hit| hit.session.title.as_str()).collect();
        assert_eq!(titles, ["kept"]);
    }

    #[test]
    fn fts5_syntax_in_a_query_is_only_words() {
        let terms = vec!["near".to_owned(), "or\"x".to_owned()];
        assert_eq!(fts5_query(&terms), "\"near\" \"or\"\"x\"");
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(shorten("a\n b\tc"), "a b c");
        let long = "word ".repeat(100);
        assert_eq!(shorten(&long).chars().count(), SNIPPET_MAX_CHARS + 1);
    }
}
