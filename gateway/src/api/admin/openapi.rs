//! The admin API's part of the OpenAPI document.
//!
//! Its handlers are generic over the kind of item (`directory.rs`), which
//! utoipa's path macros cannot describe, so the operations are listed here
//! as a table; a test reads every admin route registered in this
//! folder and fails when one is missing from the table, so the document
//! cannot silently fall behind the routes.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::OpenApi;

/// (method, path, summary, success status, who may call it)
const OPERATIONS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "post",
        "/api/v1/admin/login",
        "Log in: sets the session cookie, returns {csrf}",
        "200",
        "anyone (rate limited)",
    ),
    ("post", "/api/v1/admin/logout", "Log out", "204", "session"),
    (
        "get",
        "/api/v1/admin/channels",
        "The tenant's channels, with source and read_only",
        "200",
        "admin, supervisor",
    ),
    (
        "post",
        "/api/v1/admin/channels",
        "Create a channel (the config file's ChannelConfig); 409 key_in_use if the key exists",
        "201",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/channels/{key}",
        "One channel",
        "200",
        "admin, supervisor",
    ),
    (
        "put",
        "/api/v1/admin/channels/{key}",
        "Create or replace a channel; If-Match: the ETag of a read replaces only that revision (412 changed_meanwhile), If-None-Match: * only creates",
        "204",
        "admin",
    ),
    (
        "delete",
        "/api/v1/admin/channels/{key}",
        "Delete a channel",
        "204",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/channels/{key}/embed",
        "The <script> tag to paste before </head>: {html}",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/queues",
        "The tenant's queues",
        "200",
        "admin, supervisor",
    ),
    (
        "post",
        "/api/v1/admin/queues",
        "Create a queue (QueueConfig); 409 key_in_use if the key exists",
        "201",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/queues/{key}",
        "One queue",
        "200",
        "admin, supervisor",
    ),
    (
        "put",
        "/api/v1/admin/queues/{key}",
        "Create or replace a queue (If-Match / If-None-Match as for channels)",
        "204",
        "admin",
    ),
    (
        "delete",
        "/api/v1/admin/queues/{key}",
        "Delete a queue",
        "204",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/agents",
        "The tenant's agents",
        "200",
        "admin, supervisor",
    ),
    (
        "post",
        "/api/v1/admin/agents",
        "Create a agent (AgentConfig); 409 key_in_use if the key exists",
        "201",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/agents/{key}",
        "One agent",
        "200",
        "admin, supervisor",
    ),
    (
        "put",
        "/api/v1/admin/agents/{key}",
        "Create or replace an agent (If-Match / If-None-Match as for channels)",
        "204",
        "admin",
    ),
    (
        "delete",
        "/api/v1/admin/agents/{key}",
        "Delete an agent",
        "204",
        "admin",
    ),
    (
        "post",
        "/api/v1/admin/schedule/check",
        "Check business hours {schedule, at?}: {open, explanation (English), local_time, timezone, reason: {kind: always_open|rule|holiday|outside_rules|route|default, rule?, route?, spec?, holiday?, rules?, routes?}, destination: open|menu|closed|{queue}|{closed}, next_open}",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/audit",
        "The tenant's audit log, newest first",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/live",
        "Live view: waiting chats, ringing offers, agents and their chats",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/live/stream",
        "The live view as Server-Sent Events (event: live)",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/conversations",
        "Search: q, from, to (YYYY-MM-DD), channel, queue, agent, state, limit, offset",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/conversations/export",
        "Export the search (or ids=a,b) as format=json|csv",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/conversations/{id}",
        "One transcript with every event",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/files/{id}",
        "Download a conversation's file (attachment)",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/follow-up",
        "Missed chats and out-of-hours attempts",
        "200",
        "admin, supervisor",
    ),
    (
        "get",
        "/api/v1/admin/visitors",
        "Everything held about ?email= (GDPR access)",
        "200",
        "admin, supervisor",
    ),
    (
        "post",
        "/api/v1/admin/visitors/erase",
        "Erase everything held about {email} (GDPR erasure, audited)",
        "200",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/tokens",
        "The tenant's API tokens (never their secret): [{id, name, role, tenant, created_at, created_by}]",
        "200",
        "admin",
    ),
    (
        "post",
        "/api/v1/admin/tokens",
        "Create an API token {name, role}: its secret, once",
        "201",
        "admin",
    ),
    (
        "delete",
        "/api/v1/admin/tokens/{id}",
        "Revoke an API token",
        "204",
        "admin",
    ),
    (
        "get",
        "/api/v1/admin/users",
        "The tenant's console users (?tenant= for a superadmin), by name: [{id, username, role, tenant, created_at}]",
        "200",
        "admin, supervisor (own tenant), superadmin",
    ),
    (
        "post",
        "/api/v1/admin/users",
        "Create a console user {username, password, role, tenant?}",
        "201",
        "admin (own tenant), superadmin",
    ),
    (
        "patch",
        "/api/v1/admin/users/{id}",
        "Change a user's role {role: admin|supervisor} (not one's own)",
        "204",
        "admin (own tenant), superadmin",
    ),
    (
        "delete",
        "/api/v1/admin/users/{id}",
        "Delete a user (not oneself); their sessions end at once",
        "204",
        "admin (own tenant), superadmin",
    ),
    (
        "post",
        "/api/v1/admin/password",
        "Change one's own password {current_password, new_password, confirm_password?} (at least 12 characters); ends one's other sessions",
        "204",
        "session (any role)",
    ),
    (
        "get",
        "/api/v1/admin/tenants",
        "Every tenant",
        "200",
        "superadmin",
    ),
    (
        "post",
        "/api/v1/admin/tenants",
        "Create a tenant {id, name}",
        "201",
        "superadmin",
    ),
];

const ERRORS: &str = "Errors: {error, message}. 401 not_logged_in; 403 forbidden (role) or csrf \
    (a session request that changes something needs X-CSRF-Token and the gateway's own Origin); \
    404 not_found (also for another tenant's items); 409 read_only (managed in frontdesk.toml); \
    422 invalid, with fields: [{key, code, params, message}] (code: a stable name of the rule, \
    params: the values the English message names); 429 rate_limited.";

fn method(name: &str) -> HttpMethod {
    match name {
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// Adds the admin operations and their two security schemes.
pub fn add_to(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "admin_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (fdt_…) made at POST /api/v1/admin/tokens",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "admin_session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("frontdesk_admin"))),
    );
    for (verb, path, summary, status, who) in OPERATIONS {
        let security = if *path == "/api/v1/admin/login" {
            Vec::new()
        } else {
            vec![
                SecurityRequirement::new("admin_session", Vec::<String>::new()),
                SecurityRequirement::new("admin_token", Vec::<String>::new()),
            ]
        };
        let operation = OperationBuilder::new()
            .tag("admin")
            .summary(Some(*summary))
            .description(Some(format!("Who: {who}. {ERRORS}")))
            .securities(Some(security))
            .response(
                *status,
                ResponseBuilder::new().description("Success").build(),
            )
            .build();
        let item = PathItem::new(method(verb), operation);
        match doc.paths.paths.get_mut(*path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert((*path).to_owned(), item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_route_is_documented() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/admin");
        let mut routes = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let source = std::fs::read_to_string(entry.path()).unwrap();
            for piece in source.split(".route(").skip(1) {
                let Some(quoted) = piece.trim_start().strip_prefix('"') else {
                    continue;
                };
                let path = quoted.split('"').next().unwrap();
                if path.starts_with("/api/v1/admin") {
                    routes.push(path.to_owned());
                }
            }
        }
        assert!(routes.len() >= 20, "found the routes: {routes:?}");
        for route in routes {
            assert!(
                OPERATIONS.iter().any(|(_, path, ..)| *path == route),
                "{route} is routed but not in the OpenAPI table"
            );
        }
    }
}
