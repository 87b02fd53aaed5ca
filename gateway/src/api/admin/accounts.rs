//! Accounts, tenants and API tokens through the admin API.
//!
//! Admins list, create, re-role and delete the console users (admin or
//! supervisor) of their own tenant, and its API tokens; a super-admin also
//! creates tenants and manages the users of any of them. Another tenant's
//! user or token is `404` like one that does not exist. Nobody deletes or
//! re-roles their own account (no locking oneself out). Every logged-in
//! user changes their own password (the current one first, the rules of
//! `frontdesk admin create-user`), which ends their other sessions. Every
//! change is audited; secrets (passwords, token values) never are.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::{self, CreateUserError, Principal, Role};
use super::{directory, AdminState};
use crate::api::client::ClientAddr;
use crate::api::error::ApiError;
use crate::config::{FieldCode, FieldError};
use crate::store::{AdminUserRow, AuditEntry};

/// The longest API token name and tenant id, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 64;
pub const MAX_TENANT_ID_CHARS: usize = 64;
/// The longest tenant name, in characters.
pub const MAX_TENANT_NAME_CHARS: usize = crate::config::MAX_NAME_CHARS;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/admin/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/admin/tokens/{id}", delete(delete_token))
        .route("/api/v1/admin/users", get(list_users).post(create_user))
        .route(
            "/api/v1/admin/users/{id}",
            patch(update_user).delete(delete_user),
        )
        .route("/api/v1/admin/password", post(change_password_json))
        .route(
            "/api/v1/admin/tenants",
            get(list_tenants).post(create_tenant),
        )
}

async fn audit(
    state: &AdminState,
    principal: &Principal,
    action: &str,
    target: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    state
        .engine
        .store()
        .audit(&AuditEntry {
            tenant: principal.tenant.clone(),
            actor: principal.name.clone(),
            action: action.to_owned(),
            target,
            detail,
        })
        .await
        .map_err(store_failed)
}

fn superadmin_only(principal: &Principal) -> Result<(), ApiError> {
    if principal.role == Role::Superadmin {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only a super-admin manages tenants.",
    ))
}

/// One field refused.
fn refuse(key: &str, code: FieldCode, message: impl Into<String>) -> ApiError {
    refuse_with(FieldError::coded(key, code, message))
}

fn refuse_with(error: FieldError) -> ApiError {
    directory::invalid(vec![error])
}

/// A name that must be 1 to `max` characters once trimmed.
fn check_length(key: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let message = format!("must be 1 to {max} characters");
    if value.is_empty() {
        return Err(refuse(key, FieldCode::Empty, message));
    }
    if value.chars().count() > max {
        return Err(refuse_with(
            FieldError::coded(key, FieldCode::TooLong, message).with("max", max),
        ));
    }
    Ok(())
}

/// The tenant whose users the caller manages: theirs, or for a super-admin
/// the one asked for.
async fn managed_tenant(
    state: &AdminState,
    principal: &Principal,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let tenant = match (asked, principal.role) {
        (Some(tenant), Role::Superadmin) => tenant.to_owned(),
        (Some(tenant), _) if tenant != principal.tenant => {
            return Err(refuse(
                "tenant",
                FieldCode::TenantNotYours,
                "you manage your own tenant only",
            ))
        }
        _ => principal.tenant.clone(),
    };
    let known = state.engine.store().tenants().await.map_err(store_failed)?;
    if !known.iter().any(|(id, _)| *id == tenant) {
        return Err(refuse("tenant", FieldCode::TenantUnknown, "no such tenant"));
    }
    Ok(tenant)
}

/// A console user as the API shows it (never the password hash).
fn user_view(user: &AdminUserRow) -> serde_json::Value {
    serde_json::json!({
        "id": user.id, "username": user.username, "role": user.role,
        "tenant": user.tenant, "created_at": user.created_at,
    })
}

#[derive(Deserialize)]
pub(super) struct TenantQuery {
    /// Super-admins only: the tenant (default: their own).
    pub tenant: Option<String>,
}

/// The users of a tenant, by user name (super-admins, above tenants, are
/// in none).
pub(super) async fn tenant_users(
    state: &AdminState,
    principal: &Principal,
    asked: Option<&str>,
) -> Result<(String, Vec<AdminUserRow>), ApiError> {
    let tenant = managed_tenant(state, principal, asked).await?;
    let users = (state.engine.store().admin_users(&tenant).await).map_err(store_failed)?;
    Ok((tenant, users))
}

async fn list_users(
    State(state): State<AdminState>,
    principal: Principal,
    Query(query): Query<TenantQuery>,
) -> Result<Response, ApiError> {
    let (_, users) = tenant_users(&state, &principal, query.tenant.as_deref()).await?;
    Ok(Json(users.iter().map(user_view).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    role: Role,
    /// Super-admins only: the tenant (default: their own).
    tenant: Option<String>,
}

async fn create_user(
    State(state): State<AdminState>,
    principal: Principal,
    Json(new): Json<NewUser>,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let tenant = managed_tenant(&state, &principal, new.tenant.as_deref()).await?;
    if new.role == Role::Superadmin && principal.role != Role::Superadmin {
        return Err(refuse(
            "role",
            FieldCode::RoleNotAllowed,
            "only a super-admin makes super-admins",
        ));
    }
    let store = state.engine.store();
    match auth::create_user(store, &new.username, &new.password, new.role, Some(&tenant)).await {
        Ok(()) => {}
        Err(e) => return Err(user_refused(e)),
    }
    audit(
        &state,
        &principal,
        "user.create",
        format!("user {}", new.username),
        serde_json::json!({ "role": new.role.as_str(), "tenant": tenant }),
    )
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// The API's answer to an account that could not be made or changed.
fn user_refused(e: CreateUserError) -> ApiError {
    let message = e.to_string();
    match e {
        CreateUserError::BadName => refuse("username", FieldCode::UsernameInvalid, message),
        CreateUserError::Taken(name) => refuse_with(
            FieldError::coded("username", FieldCode::UsernameTaken, message).with("username", name),
        ),
        CreateUserError::WeakPassword => refuse_with(password_short("password")),
        CreateUserError::Store(e) => store_failed(e),
        CreateUserError::Hash(e) => {
            tracing::error!(error = %e, "cannot hash a password");
            ApiError::internal()
        }
    }
}

fn password_short(key: &str) -> FieldError {
    let message = CreateUserError::WeakPassword.to_string();
    FieldError::coded(key, FieldCode::PasswordShort, message).with("min", auth::MIN_PASSWORD_CHARS)
}

fn no_such_user() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "There is no such user.")
}

/// The user `id` if the caller manages them: one of their tenant's, or
/// any for a super-admin; else 404, as for no user at all.
async fn user_in_reach(
    state: &AdminState,
    principal: &Principal,
    id: &str,
) -> Result<AdminUserRow, ApiError> {
    principal.require_admin()?;
    let user = (state.engine.store().admin_user(id).await).map_err(store_failed)?;
    user.filter(|u| {
        principal.role == Role::Superadmin || u.tenant.as_deref() == Some(&principal.tenant)
    })
    .ok_or_else(no_such_user)
}

/// Refuses a change of the caller's own account.
fn not_self(principal: &Principal, user: &AdminUserRow, key: &str) -> Result<(), ApiError> {
    if principal.user_id.as_deref() == Some(user.id.as_str()) {
        return Err(refuse(
            key,
            FieldCode::UserSelf,
            "you cannot delete your own account or change its role",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct UserChange {
    role: Role,
}

async fn update_user(
    State(state): State<AdminState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(change): Json<UserChange>,
) -> Result<StatusCode, ApiError> {
    let user = user_in_reach(&state, &principal, &id).await?;
    not_self(&principal, &user, "role")?;
    if change.role == Role::Superadmin || user.role == Role::Superadmin.as_str() {
        return Err(refuse(
            "role",
            FieldCode::RoleNotAllowed,
            "a console user is an admin or a supervisor; super-admins are made with `frontdesk admin create-user`",
        ));
    }
    let store = state.engine.store();
    if !(store.set_admin_role(&user.id, change.role.as_str()).await).map_err(store_failed)? {
        return Err(no_such_user());
    }
    audit(
        &state,
        &principal,
        "user.update",
        format!("user {}", user.username),
        serde_json::json!({ "role": change.role.as_str() }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an account: its sessions end at once (they no longer find it).
async fn delete_user(
    State(state): State<AdminState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = user_in_reach(&state, &principal, &id).await?;
    not_self(&principal, &user, "id")?;
    if !(state.engine.store().delete_admin_user(&user.id).await).map_err(store_failed)? {
        return Err(no_such_user());
    }
    audit(
        &state,
        &principal,
        "user.delete",
        format!("user {}", user.username),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password change: the current one, the new one and (from the console)
/// the new one again.
#[derive(Deserialize)]
pub(super) struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
    pub confirm_password: Option<String>,
}

/// Why a password change was refused: fields to fix, or an error that is
/// not about them (rate limit, a token, the database).
pub(super) enum Refused {
    Fields(Vec<FieldError>),
    Other(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused::Other(e)
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> ApiError {
        match r {
            Refused::Fields(fields) => directory::invalid(fields),
            Refused::Other(e) => e,
        }
    }
}

/// Changes the caller's own password, and ends their other sessions: the
/// account's session epoch goes up and `session` (the caller's) follows.
pub(super) async fn change_password(
    state: &AdminState,
    session: &Session,
    principal: &Principal,
    client: ClientAddr,
    change: &PasswordChange,
) -> Result<(), Refused> {
    let Some(user_id) = &principal.user_id else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "An API token has no password: log in to the console to change yours.",
        )
        .into());
    };
    state.login_allowed(client, &principal.name)?;
    let store = state.engine.store();
    let user = (store.admin_user(user_id).await.map_err(store_failed))?.ok_or_else(no_such_user)?;
    let mut fields = Vec::new();
    if !auth::password_matches(user.password_hash.clone(), &change.current_password).await? {
        tracing::info!(user = %user.username, "console password change refused: wrong current password");
        fields.push(FieldError::coded(
            "current_password",
            FieldCode::PasswordWrong,
            "this is not your current password",
        ));
    }
    if change.new_password.chars().count() < auth::MIN_PASSWORD_CHARS {
        fields.push(password_short("new_password"));
    }
    if (change.confirm_password.as_ref()).is_some_and(|again| *again != change.new_password) {
        fields.push(FieldError::coded(
            "confirm_password",
            FieldCode::PasswordsDiffer,
            "the two new passwords differ",
        ));
    }
    if !fields.is_empty() {
        return Err(Refused::Fields(fields));
    }
    let epoch = auth::set_password(store, &user.username, &change.new_password)
        .await
        .map_err(user_refused)?;
    if let Err(e) = session.insert(auth::EPOCH, epoch).await {
        tracing::warn!(error = %e, "cannot keep the session after a password change");
    }
    audit(
        state,
        principal,
        "user.password",
        format!("user {}", user.username),
        serde_json::json!({}),
    )
    .await?;
    tracing::info!(user = %user.username, "console password changed; other sessions ended");
    Ok(())
}

async fn change_password_json(
    State(state): State<AdminState>,
    session: Session,
    principal: Principal,
    client: ClientAddr,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    change_password(&state, &session, &principal, client, &change).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct NewTenant {
    id: String,
    name: String,
}

async fn create_tenant(
    State(state): State<AdminState>,
    principal: Principal,
    Json(new): Json<NewTenant>,
) -> Result<Response, ApiError> {
    superadmin_only(&principal)?;
    let valid = (1..=MAX_TENANT_ID_CHARS).contains(&new.id.len())
        && new
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(refuse(
            "id",
            FieldCode::TenantIdInvalid,
            format!("1 to {MAX_TENANT_ID_CHARS} lowercase letters, digits or '-'"),
        ));
    }
    let name = new.name.trim();
    check_length("name", name, MAX_TENANT_NAME_CHARS)?;
    let created = state
        .engine
        .store()
        .create_tenant(&new.id, name)
        .await
        .map_err(store_failed)?;
    if !created {
        return Err(refuse("id", FieldCode::TenantTaken, "a tenant has this id"));
    }
    audit(
        &state,
        &principal,
        "tenant.create",
        format!("tenant {}", new.id),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Every tenant, `(id, name)`; super-admins only.
pub(super) async fn tenants(
    state: &AdminState,
    principal: &Principal,
) -> Result<Vec<(String, String)>, ApiError> {
    superadmin_only(principal)?;
    state.engine.store().tenants().await.map_err(store_failed)
}

async fn list_tenants(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let body: Vec<_> = (tenants(&state, &principal).await?)
        .into_iter()
        .map(|(id, name)| serde_json::json!({ "id": id, "name": name }))
        .collect();
    Ok(Json(body).into_response())
}

fn store_failed(e: crate::store::StoreError) -> ApiError {
    crate::engine::EngineError::Store(e).into()
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    role: Role,
}

/// Creates an API token for the caller's tenant; the secret is in this
/// answer only.
async fn create_token(
    State(state): State<AdminState>,
    principal: Principal,
    Json(new): Json<NewToken>,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let name = new.name.trim();
    check_length("name", name, MAX_TOKEN_NAME_CHARS)?;
    if new.role == Role::Superadmin {
        return Err(refuse(
            "role",
            FieldCode::TokenRole,
            "a token is an admin or a supervisor of one tenant",
        ));
    }
    let (token, hash) = auth::new_api_token();
    let row = crate::store::ApiTokenRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: principal.tenant.clone(),
        name: name.to_owned(),
        role: new.role.as_str().to_owned(),
        created_at: crate::store::now_ms(),
        created_by: principal.name.clone(),
    };
    let store = state.engine.store();
    store
        .create_api_token(&row, &hash)
        .await
        .map_err(store_failed)?;
    audit(
        &state,
        &principal,
        "token.create",
        format!("token {}", row.name),
        serde_json::json!({ "role": row.role }),
    )
    .await?;
    let mut body = token_view(&row);
    body["token"] = token.into();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A token as the API shows it (never its secret).
fn token_view(t: &crate::store::ApiTokenRow) -> serde_json::Value {
    serde_json::json!({
        "id": t.id, "name": t.name, "role": t.role, "tenant": t.tenant,
        "created_at": t.created_at, "created_by": t.created_by,
    })
}

/// The caller's tenant's tokens, newest first; admins only.
pub(super) async fn tenant_tokens(
    state: &AdminState,
    principal: &Principal,
) -> Result<Vec<crate::store::ApiTokenRow>, ApiError> {
    principal.require_admin()?;
    (state.engine.store().api_tokens(&principal.tenant).await).map_err(store_failed)
}

async fn list_tokens(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let tokens = tenant_tokens(&state, &principal).await?;
    Ok(Json(tokens.iter().map(token_view).collect::<Vec<_>>()).into_response())
}

async fn delete_token(
    State(state): State<AdminState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin()?;
    let store = state.engine.store();
    if !store
        .delete_api_token(&principal.tenant, &id)
        .await
        .map_err(store_failed)?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such token.",
        ));
    }
    audit(
        &state,
        &principal,
        "token.delete",
        format!("token {id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
