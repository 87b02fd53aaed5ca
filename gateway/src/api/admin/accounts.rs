//! Accounts, tenants and API tokens through the admin API.
//!
//! Admins create console users (admin or supervisor) and API tokens in
//! their own tenant; a super-admin creates tenants and users in any of
//! them. Every creation and revocation is audited; secrets (passwords,
//! token values) never are.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{self, CreateUserError, Principal, Role};
use super::{directory, AdminState};
use crate::api::error::ApiError;
use crate::config::FieldError;
use crate::store::AuditEntry;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/admin/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/admin/tokens/{id}", delete(delete_token))
        .route("/api/v1/admin/users", post(create_user))
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
    let tenant = match (&new.tenant, principal.role) {
        (Some(tenant), Role::Superadmin) => tenant.clone(),
        (Some(tenant), _) if *tenant != principal.tenant => {
            return Err(directory::invalid(vec![FieldError::new(
                "tenant",
                "you manage your own tenant only",
            )]))
        }
        _ => principal.tenant.clone(),
    };
    if new.role == Role::Superadmin && principal.role != Role::Superadmin {
        return Err(directory::invalid(vec![FieldError::new(
            "role",
            "only a super-admin makes super-admins",
        )]));
    }
    let store = state.engine.store();
    let known = store.tenants().await.map_err(store_failed)?;
    if !known.iter().any(|(id, _)| *id == tenant) {
        return Err(directory::invalid(vec![FieldError::new(
            "tenant",
            "no such tenant",
        )]));
    }
    match auth::create_user(store, &new.username, &new.password, new.role, Some(&tenant)).await {
        Ok(()) => {}
        Err(e @ (CreateUserError::BadName | CreateUserError::Taken(_))) => {
            return Err(directory::invalid(vec![FieldError::new(
                "username",
                e.to_string(),
            )]))
        }
        Err(e @ CreateUserError::WeakPassword) => {
            return Err(directory::invalid(vec![FieldError::new(
                "password",
                e.to_string(),
            )]))
        }
        Err(CreateUserError::Store(e)) => return Err(store_failed(e)),
        Err(CreateUserError::Hash(e)) => {
            tracing::error!(error = %e, "cannot hash a password");
            return Err(ApiError::internal());
        }
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
    let valid = (1..=64).contains(&new.id.len())
        && new
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(directory::invalid(vec![FieldError::new(
            "id",
            "1 to 64 lowercase letters, digits or '-'",
        )]));
    }
    if new.name.trim().is_empty() || new.name.chars().count() > 120 {
        return Err(directory::invalid(vec![FieldError::new(
            "name",
            "must be 1 to 120 characters",
        )]));
    }
    let created = state
        .engine
        .store()
        .create_tenant(&new.id, new.name.trim())
        .await
        .map_err(store_failed)?;
    if !created {
        return Err(directory::invalid(vec![FieldError::new(
            "id",
            "a tenant has this id",
        )]));
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

async fn list_tenants(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    superadmin_only(&principal)?;
    let tenants = state.engine.store().tenants().await.map_err(store_failed)?;
    let body: Vec<_> = tenants
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
    if name.is_empty() || name.chars().count() > 64 {
        return Err(directory::invalid(vec![FieldError::new(
            "name",
            "must be 1 to 64 characters",
        )]));
    }
    if new.role == Role::Superadmin {
        return Err(directory::invalid(vec![FieldError::new(
            "role",
            "a token is an admin or a supervisor of one tenant",
        )]));
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
    let body =
        serde_json::json!({ "id": row.id, "name": row.name, "role": row.role, "token": token });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_tokens(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let tokens = state
        .engine
        .store()
        .api_tokens(&principal.tenant)
        .await
        .map_err(store_failed)?;
    let body: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id, "name": t.name, "role": t.role,
                "created_at": t.created_at, "created_by": t.created_by,
            })
        })
        .collect();
    Ok(Json(body).into_response())
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
