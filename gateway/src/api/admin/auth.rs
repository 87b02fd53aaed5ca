//! Who is calling the admin API, and what they may do.
//!
//! Two ways in: the console's session cookie (`HttpOnly`, `SameSite=Strict`,
//! `Secure` unless the gateway is plain-HTTP loopback), or an API token
//! (`Authorization: Bearer fdt_…`, stored as a SHA-256). A session request
//! that changes anything must also carry the session's CSRF token (header
//! `X-CSRF-Token`, or the `_csrf` form field the console's plain forms send)
//! and, when the browser sends one, an `Origin` equal to the gateway's own:
//! a cookie alone never authorises a change.
//!
//! Passwords are argon2id (OWASP's recommended parameters, the crate's
//! defaults), hashed off the async threads, at least
//! [`MIN_PASSWORD_CHARS`] long. A session counts while its user's
//! `session_epoch` is the one it logged in at: a password change bumps it,
//! which ends the user's other sessions.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use super::AdminState;
use crate::api::error::ApiError;
use crate::engine::DEFAULT_TENANT;
use crate::store::{AdminUserRow, Store, StoreError};

/// Session keys.
pub(super) const USER_ID: &str = "user_id";
pub(super) const CSRF: &str = "csrf";
pub(super) const EPOCH: &str = "epoch";

/// The shortest password an account may have, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A user name: 1 to this many letters, digits, `.`, `_`, `-` or `@`.
pub const MAX_USERNAME_CHARS: usize = 64;

/// The prefix of every API token, so a leaked one is easy to recognise.
const TOKEN_PREFIX: &str = "fdt_";

/// What an account or token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages tenants; acts as an admin of the default tenant.
    Superadmin,
    /// Everything in its tenant.
    Admin,
    /// Live view and transcripts; reads the configuration.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "superadmin",
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "superadmin" => Some(Role::Superadmin),
            "admin" => Some(Role::Admin),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// For the audit log: the user name, or `token:NAME`.
    pub name: String,
    /// The console account (none for API tokens).
    pub user_id: Option<String>,
    pub tenant: String,
    pub role: Role,
    /// The session's CSRF token (none for API tokens).
    pub csrf: Option<String>,
}

impl Principal {
    /// Refuses supervisors: the configuration is read-only to them.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Superadmin => Ok(()),
            Role::Supervisor => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Your role (supervisor) can read the configuration but not change it.",
            )),
        }
    }

    /// The actor of directory changes.
    pub fn actor(&self) -> crate::engine::Actor {
        crate::engine::Actor {
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            source: crate::store::ItemSource::Console,
        }
    }
}

fn not_logged_in() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "not_logged_in",
        "Log in to the console, or send an API token.",
    )
}

fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "This request did not come from the console (missing or wrong CSRF token, or another origin).",
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "admin authentication failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong on our side.",
    )
}

impl FromRequestParts<AdminState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(parts) {
            return token_principal(&state.engine.store().clone(), token).await;
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| not_logged_in())?;
        let principal = session_principal(state.engine.store(), &session).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            let expected = principal.csrf.as_deref();
            if !(sent.is_some() && sent == expected && same_origin(&parts.headers, state)) {
                return Err(csrf_refused());
            }
        }
        Ok(principal)
    }
}

/// Whether the browser's `Origin` (if it sent one) is the gateway's own.
pub(super) fn same_origin(headers: &axum::http::HeaderMap, state: &AdminState) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    origin.to_str().is_ok_and(|o| o == state.origin)
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

async fn token_principal(store: &Store, token: &str) -> Result<Principal, ApiError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(not_logged_in());
    }
    let row = store
        .api_token_by_hash(&token_hash(token))
        .await
        .map_err(internal)?
        .ok_or_else(not_logged_in)?;
    let role = Role::parse(&row.role).ok_or_else(|| internal("stored token role"))?;
    Ok(Principal {
        name: format!("token:{}", row.name),
        user_id: None,
        tenant: row.tenant,
        role,
        csrf: None,
    })
}

/// The logged-in user of `session`.
pub(super) async fn session_principal(
    store: &Store,
    session: &Session,
) -> Result<Principal, ApiError> {
    let user_id: Option<String> = session.get(USER_ID).await.map_err(internal)?;
    let user_id = user_id.ok_or_else(not_logged_in)?;
    let user = store
        .admin_user(&user_id)
        .await
        .map_err(internal)?
        .ok_or_else(not_logged_in)?;
    let epoch: Option<i64> = session.get(EPOCH).await.map_err(internal)?;
    if epoch.unwrap_or(0) != user.session_epoch {
        // Logged in before the password last changed.
        return Err(not_logged_in());
    }
    let csrf: Option<String> = session.get(CSRF).await.map_err(internal)?;
    principal_of(&user, csrf)
}

fn principal_of(user: &AdminUserRow, csrf: Option<String>) -> Result<Principal, ApiError> {
    let role = Role::parse(&user.role).ok_or_else(|| internal("stored user role"))?;
    Ok(Principal {
        name: user.username.clone(),
        user_id: Some(user.id.clone()),
        tenant: user
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
        role,
        csrf,
    })
}

/// A new random secret (CSRF tokens, API tokens): 256 bits, hex.
pub(super) fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new API token and the hash to store for it.
pub(super) fn new_api_token() -> (String, String) {
    let token = format!("{TOKEN_PREFIX}{}", random_secret());
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("user name must be 1 to {MAX_USERNAME_CHARS} letters, digits, '.', '_', '-' or '@'")]
    BadName,
    #[error("password must be at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("a user named {0:?} already exists")]
    Taken(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a console account (`frontdesk admin create-user`).
pub async fn create_user(
    store: &Store,
    username: &str,
    password: &str,
    role: Role,
    tenant: Option<&str>,
) -> Result<(), CreateUserError> {
    let valid_name = (1..=MAX_USERNAME_CHARS).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !valid_name {
        return Err(CreateUserError::BadName);
    }
    let hash = strong_hash(password).await?;
    let tenant = match role {
        Role::Superadmin => None,
        _ => Some(tenant.unwrap_or(DEFAULT_TENANT).to_owned()),
    };
    let created = store
        .create_admin_user(&AdminUserRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant,
            username: username.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
            created_at: crate::store::now_ms(),
            session_epoch: 0,
        })
        .await?;
    if !created {
        return Err(CreateUserError::Taken(username.to_owned()));
    }
    Ok(())
}

/// Sets an existing account's password (`create-user --or-update`, or its
/// user in the console) and ends its sessions; returns the new session
/// epoch.
pub async fn set_password(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<i64, CreateUserError> {
    let hash = strong_hash(password).await?;
    store
        .set_admin_password(username, &hash)
        .await?
        .ok_or_else(|| CreateUserError::Taken(username.to_owned()))
}

/// The hash of `password` if it follows the rules.
async fn strong_hash(password: &str) -> Result<String, CreateUserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CreateUserError::WeakPassword);
    }
    hash_password(password.to_owned())
        .await
        .map_err(CreateUserError::Hash)
}

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Checks `password` for `username`: the user when it matches. Unknown
/// users cost the same argon2 work as a wrong password, so timing does not
/// tell which user names exist.
pub(super) async fn verify_login(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<Option<AdminUserRow>, ApiError> {
    /// A hash of a random password, verified against when there is no user.
    const DECOY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$OZ3zqVhP9wrdq/MrwV0ScDBfb2bHrD6e04xXN3YH2Ok";
    let user = store.admin_user_by_name(username).await.map_err(internal)?;
    let hash = user
        .as_ref()
        .map_or_else(|| DECOY.to_owned(), |u| u.password_hash.clone());
    let matches = password_matches(hash, password).await?;
    Ok(user.filter(|_| matches))
}

/// Whether `password` is the one `hash` (a PHC string) was made from,
/// checked on a blocking thread.
pub(super) async fn password_matches(hash: String, password: &str) -> Result<bool, ApiError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_hash_is_a_real_argon2id_hash() {
        // Were it unparsable, unknown users would answer faster than known
        // ones and give their absence away.
        let source = include_str!("auth.rs");
        let decoy = source
            .split("const DECOY: &str =\n        \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the decoy is in the source");
        let parsed = PasswordHash::new(decoy).expect("the decoy parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
    }

    #[test]
    fn roles_round_trip_and_tokens_are_recognisable() {
        for role in [Role::Superadmin, Role::Admin, Role::Supervisor] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        let (token, hash) = new_api_token();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(hash, token_hash(&token));
        assert!(!hash.contains(&token[TOKEN_PREFIX.len()..]));
    }
}
