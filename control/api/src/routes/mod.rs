//! The route table of the admin API and the router built from it.
//!
//! Every route is one [`RouteSpec`] (method, path, required access, body kind) paired with its handler in
//! [`routes`]; the router ([`crate::router`]), the per-route auth/rate-limit middleware, the body limits and
//! the OpenAPI error responses ([`crate::openapi`]) all come from this one table, and a test keeps it in step
//! with the OpenAPI document. This module must not hold business logic (handlers live in the submodules),
//! assemble the router, or depend on the OpenAPI document (which is generated from this table: the document
//! reaches its handler through the request, see [`service::ApiDocument`]).

pub mod control;
pub mod fleet;
pub mod service;

use axum::http::Method;
use axum::routing::{self, MethodRouter};

use crate::state::ApiState;
use crate::tokens::Access;

/// What a route reads from its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// A JSON document (limit `body_limit_bytes`).
    Json,
    /// An inventory document, JSON or plist (limit `inventory_body_limit_bytes`).
    Inventory,
}

/// One route of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, with `{name}` parameters (the same syntax in axum and OpenAPI).
    pub path: &'static str,
    /// What the caller needs.
    pub access: Access,
    /// What the body holds.
    pub body: BodyKind,
}

fn spec(method: Method, path: &'static str, access: Access, body: BodyKind) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        body,
    }
}

/// Every route with its handler.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<ApiState>)> {
    use self::control as c;
    use self::service as s;
    use routing::{delete, get, post, put};
    use Access::{AdminWrite, AlertWrite, Public, Read};
    use BodyKind::{Inventory, Json, None as NoBody};
    vec![
        (
            spec(Method::GET, "/healthz", Public, NoBody),
            get(s::healthz),
        ),
        (spec(Method::GET, "/readyz", Public, NoBody), get(s::readyz)),
        (spec(Method::GET, "/metrics", Read, NoBody), get(s::metrics)),
        (
            spec(Method::GET, "/api/v1/openapi.json", Read, NoBody),
            get(s::openapi_json),
        ),
        (
            spec(Method::GET, "/api/v1/stats", Read, NoBody),
            get(s::stats),
        ),
        (
            spec(Method::POST, "/api/v1/inventory", AdminWrite, Inventory),
            post(c::import_inventory),
        ),
        (
            spec(Method::GET, "/api/v1/devices", Read, NoBody),
            get(c::list_devices),
        ),
        (
            spec(Method::GET, "/api/v1/fleet/appliances", Read, NoBody),
            get(self::fleet::list_appliances),
        ),
        (
            spec(Method::GET, "/api/v1/fleet/config/{bucket}", Read, NoBody),
            get(self::fleet::list_shared),
        ),
        (
            spec(
                Method::PUT,
                "/api/v1/fleet/config/{bucket}/{key}",
                AdminWrite,
                Json,
            ),
            put(self::fleet::put_shared),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/fleet/config/{bucket}/{key}",
                AdminWrite,
                NoBody,
            ),
            delete(self::fleet::delete_shared),
        ),
        (
            spec(Method::GET, "/api/v1/devices/{udid}", Read, NoBody),
            get(c::get_device),
        ),
        (
            spec(Method::POST, "/api/v1/device-states", AdminWrite, Json),
            post(c::post_device_states),
        ),
        (
            spec(Method::GET, "/api/v1/roles", Read, NoBody),
            get(c::list_roles),
        ),
        (
            spec(Method::GET, "/api/v1/roles/{name}", Read, NoBody),
            get(c::get_role),
        ),
        (
            spec(Method::PUT, "/api/v1/roles/{name}", AdminWrite, Json),
            put(c::put_role),
        ),
        (
            spec(Method::DELETE, "/api/v1/roles/{name}", AdminWrite, NoBody),
            delete(c::delete_role),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/roles/{name}/baseline",
                AdminWrite,
                Json,
            ),
            post(c::post_role_baseline),
        ),
        (
            spec(Method::GET, "/api/v1/exceptions", Read, NoBody),
            get(c::list_exceptions),
        ),
        (
            spec(Method::POST, "/api/v1/exceptions", AdminWrite, Json),
            post(c::post_exception),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/exceptions/{id}",
                AdminWrite,
                NoBody,
            ),
            delete(c::delete_exception),
        ),
        (
            spec(Method::GET, "/api/v1/learning/proposals", Read, NoBody),
            get(c::list_proposals),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/learning/proposals/{id}/approve",
                AdminWrite,
                Json,
            ),
            post(c::approve_proposal),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/learning/proposals/{id}/reject",
                AdminWrite,
                Json,
            ),
            post(c::reject_proposal),
        ),
        (
            spec(Method::GET, "/api/v1/alerts", Read, NoBody),
            get(c::list_alerts),
        ),
        (
            spec(Method::GET, "/api/v1/alerts/{id}", Read, NoBody),
            get(c::get_alert),
        ),
        (
            spec(Method::GET, "/api/v1/findings/{id}", Read, NoBody),
            get(c::get_finding),
        ),
        (
            spec(Method::POST, "/api/v1/alerts/{id}/ack", AlertWrite, Json),
            post(c::ack_alert),
        ),
        (
            spec(Method::POST, "/api/v1/alerts/{id}/close", AlertWrite, Json),
            post(c::close_alert),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/alerts/{id}/escalate",
                AlertWrite,
                Json,
            ),
            post(c::escalate_alert),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/alerts/{id}/comments",
                AlertWrite,
                Json,
            ),
            post(c::comment_alert),
        ),
        (
            spec(Method::POST, "/api/v1/alerts/{id}/undo", AlertWrite, Json),
            post(c::undo_alert),
        ),
        (
            spec(Method::GET, "/api/v1/alert-groups", Read, NoBody),
            get(c::list_alert_groups),
        ),
        (
            spec(Method::POST, "/api/v1/exceptions/retro-impact", Read, Json),
            post(c::exception_retro_impact),
        ),
        (
            spec(Method::GET, "/api/v1/audit", Read, NoBody),
            get(c::list_audit),
        ),
        (
            spec(Method::POST, "/api/v1/reload", AdminWrite, NoBody),
            post(c::reload),
        ),
    ]
}

/// The route table without handlers.
pub fn route_specs() -> Vec<RouteSpec> {
    routes().into_iter().map(|(s, _)| s).collect()
}
