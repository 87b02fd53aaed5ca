//! Finding past conversations: the console's transcript search and the
//! visitor-data (GDPR) lookup by e-mail.
//!
//! Every query is bounded to a set of channel keys (the caller's tenant's),
//! so one tenant's search can never return another's conversation.

use super::conversations::{bind_all, from_row, Value, COLUMNS};
use super::{ConversationRow, Store, StoreResult};
use crate::domain::ConversationState;

/// What to look for; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only these channels (the tenant's). Empty: nothing matches.
    pub channels: Vec<String>,
    /// Part of the visitor's name or e-mail, any case.
    pub text: Option<String>,
    /// Started at or after / before (Unix milliseconds).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub channel: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub states: Vec<ConversationState>,
    /// Only these conversations (an export of a selection).
    pub ids: Vec<String>,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    /// Conversations matching `filter`, newest first.
    pub async fn search_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> StoreResult<Vec<ConversationRow>> {
        if filter.channels.is_empty() {
            return Ok(Vec::new());
        }
        let mut values = Vec::new();
        let mut conditions = Vec::new();
        let any_of = |column: &str, items: Vec<String>, values: &mut Vec<Value>| {
            let marks: Vec<String> = items
                .into_iter()
                .map(|item| {
                    values.push(Value::Text(Some(item)));
                    format!("${}", values.len())
                })
                .collect();
            format!("{column} IN ({})", marks.join(", "))
        };
        conditions.push(any_of("channel_key", filter.channels.clone(), &mut values));
        if !filter.states.is_empty() {
            let states = filter
                .states
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            conditions.push(any_of("state", states, &mut values));
        }
        if !filter.ids.is_empty() {
            conditions.push(any_of("id", filter.ids.clone(), &mut values));
        }
        let mut equal = |column: &str, value: &Option<String>, values: &mut Vec<Value>| {
            if let Some(value) = value {
                values.push(Value::Text(Some(value.clone())));
                conditions.push(format!("{column} = ${}", values.len()));
            }
        };
        equal("channel_key", &filter.channel, &mut values);
        equal("queue_extension", &filter.queue, &mut values);
        equal("agent_extension", &filter.agent, &mut values);
        if let Some(text) = filter
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let escaped = text
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            values.push(Value::Text(Some(format!("%{escaped}%"))));
            let n = values.len();
            conditions.push(format!(
                "(LOWER(visitor_name) LIKE ${n} ESCAPE '\\' OR LOWER(visitor_email) LIKE ${n} ESCAPE '\\')"
            ));
        }
        if let Some(from) = filter.from_ms {
            values.push(Value::Int(Some(from)));
            conditions.push(format!("created_at >= ${}", values.len()));
        }
        if let Some(to) = filter.to_ms {
            values.push(Value::Int(Some(to)));
            conditions.push(format!("created_at < ${}", values.len()));
        }
        values.push(Value::Int(Some(filter.limit.clamp(1, 1000))));
        values.push(Value::Int(Some(filter.offset.max(0))));
        let sql = format!(
            "SELECT {COLUMNS} FROM conversations WHERE {} \
             ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            conditions.join(" AND "),
            values.len() - 1,
            values.len()
        );
        let rows = bind_all(sqlx::query(&sql), values)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Every conversation of these channels whose visitor gave `email`
    /// (compared without case).
    pub async fn conversations_of_email(
        &self,
        channels: &[String],
        email: &str,
    ) -> StoreResult<Vec<ConversationRow>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let mut values: Vec<Value> = vec![Value::Text(Some(email.trim().to_lowercase()))];
        let marks: Vec<String> = channels
            .iter()
            .map(|c| {
                values.push(Value::Text(Some(c.clone())));
                format!("${}", values.len())
            })
            .collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM conversations WHERE LOWER(visitor_email) = $1 \
             AND channel_key IN ({}) ORDER BY created_at",
            marks.join(", ")
        );
        let rows = bind_all(sqlx::query(&sql), values)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }
}
