//! Console accounts (`admin_users`), sessions (`admin_sessions`) and API
//! tokens (`api_tokens`).
//!
//! Only what is safe to keep is stored: password hashes (argon2id, made by
//! the caller), and a SHA-256 of each API token. Session ids are random
//! 128-bit values the session layer makes. A user's `session_epoch` goes
//! up with every password change: sessions made before no longer count.

use sqlx::Row;

use super::{now_ms, Store, StoreResult};

const USER_COLUMNS: &str =
    "SELECT id, tenant_id, username, password_hash, role, created_at, session_epoch FROM admin_users";

/// A console account.
#[derive(Debug, Clone)]
pub struct AdminUserRow {
    pub id: String,
    /// `None`: a super-admin, above tenants.
    pub tenant: Option<String>,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
    /// The sessions that count are those logged in at this epoch.
    pub session_epoch: i64,
}

/// An API token (never the token itself).
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub created_by: String,
}

impl Store {
    /// Creates an account; `false` when the user name is taken.
    pub async fn create_admin_user(&self, user: &AdminUserRow) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO admin_users (id, tenant_id, username, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&user.id)
        .bind(user.tenant.clone())
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.role)
        .bind(user.created_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces an account's password hash and ends its sessions (a new
    /// epoch); the new epoch, or `None` when there is no such user.
    pub async fn set_admin_password(&self, username: &str, hash: &str) -> StoreResult<Option<i64>> {
        let done = sqlx::query(
            "UPDATE admin_users SET password_hash = $1, session_epoch = session_epoch + 1 \
             WHERE username = $2",
        )
        .bind(hash.to_owned())
        .bind(username.to_owned())
        .execute(&mut *self.writer().await?)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(self
            .admin_user_by_name(username)
            .await?
            .map(|u| u.session_epoch))
    }

    pub async fn admin_user_by_name(&self, username: &str) -> StoreResult<Option<AdminUserRow>> {
        let row = sqlx::query(&format!("{USER_COLUMNS} WHERE username = $1"))
            .bind(username.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_of(&r)).transpose()
    }

    pub async fn admin_user(&self, id: &str) -> StoreResult<Option<AdminUserRow>> {
        let row = sqlx::query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_of(&r)).transpose()
    }

    /// A tenant's accounts (super-admins belong to none), by user name.
    pub async fn admin_users(&self, tenant: &str) -> StoreResult<Vec<AdminUserRow>> {
        let rows = sqlx::query(&format!(
            "{USER_COLUMNS} WHERE tenant_id = $1 ORDER BY username"
        ))
        .bind(tenant.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_of).collect()
    }

    /// Gives an account another role; `false` when there is no such user.
    pub async fn set_admin_role(&self, id: &str, role: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE admin_users SET role = $1 WHERE id = $2")
            .bind(role.to_owned())
            .bind(id.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an account (its sessions no longer find it); `false` when
    /// there is no such user.
    pub async fn delete_admin_user(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM admin_users WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A session's data and expiry (milliseconds), if it has not expired.
    pub async fn admin_session(&self, id: &str) -> StoreResult<Option<(String, i64)>> {
        let row = sqlx::query(
            "SELECT data, expires_at FROM admin_sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id.to_owned())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("data")?, r.try_get("expires_at")?)))
            .transpose()?)
    }

    /// Stores a new session; `false` when the id is already used.
    pub async fn create_admin_session(
        &self,
        id: &str,
        data: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO admin_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_owned())
        .bind(data.to_owned())
        .bind(expires_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates or replaces a session.
    pub async fn save_admin_session(
        &self,
        id: &str,
        data: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO admin_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = $2, expires_at = $3",
        )
        .bind(id.to_owned())
        .bind(data.to_owned())
        .bind(expires_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    pub async fn delete_admin_session(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Forgets expired sessions; returns how many.
    pub async fn purge_admin_sessions(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores a token by the SHA-256 of its secret.
    pub async fn create_api_token(&self, token: &ApiTokenRow, hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, token_hash, role, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.id)
        .bind(&token.tenant)
        .bind(&token.name)
        .bind(hash.to_owned())
        .bind(&token.role)
        .bind(token.created_at)
        .bind(&token.created_by)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// The token whose secret hashes to `hash`.
    pub async fn api_token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiTokenRow>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, role, created_at, created_by FROM api_tokens \
             WHERE token_hash = $1",
        )
        .bind(hash.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_of(&r)).transpose()
    }

    /// A tenant's tokens, newest first.
    pub async fn api_tokens(&self, tenant: &str) -> StoreResult<Vec<ApiTokenRow>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, role, created_at, created_by FROM api_tokens \
             WHERE tenant_id = $1 ORDER BY created_at DESC",
        )
        .bind(tenant.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_of).collect()
    }

    /// Revokes a tenant's token; `false` when it has no such token.
    pub async fn delete_api_token(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_owned())
            .bind(id.to_owned())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn user_of(r: &sqlx::any::AnyRow) -> StoreResult<AdminUserRow> {
    Ok(AdminUserRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
        session_epoch: r.try_get("session_epoch")?,
    })
}

fn token_of(r: &sqlx::any::AnyRow) -> StoreResult<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}
