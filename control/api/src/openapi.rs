//! The OpenAPI 3 document of the admin API, generated from the handlers' `#[utoipa::path]` annotations and
//! completed from the route table: the bearer security scheme, and the error responses every route can give
//! (401/403/429 from its access, 400/413 from its body, 404 from its path parameters), all as
//! `application/problem+json`.
//!
//! This module must not list a route the router does not serve; `tests/openapi.rs` checks both directions.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::OpenApi;

use crate::problem::{Problem, PROBLEM_JSON};
use crate::routes::{control, route_specs, service, BodyKind, RouteSpec};
use crate::tokens::Access;

/// Name of the bearer security scheme in the document.
pub const BEARER_SCHEME: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portolan admin API",
        description = "Inventory, device state, baselines, exceptions, learning, alerts, audit and dataplane \
                       statistics of a Portolan appliance. Every route except /healthz and /readyz needs a \
                       bearer token (roles: admin, analyst, viewer). Errors are RFC 7807 problem documents."
    ),
    paths(
        service::healthz,
        service::readyz,
        service::metrics,
        service::stats,
        service::openapi_json,
        control::import_inventory,
        control::list_devices,
        control::get_device,
        control::post_device_states,
        control::list_roles,
        control::get_role,
        control::post_role_baseline,
        control::list_exceptions,
        control::post_exception,
        control::delete_exception,
        control::list_proposals,
        control::approve_proposal,
        control::list_alerts,
        control::get_alert,
        control::ack_alert,
        control::close_alert,
        control::list_audit,
        control::reload,
    ),
    components(schemas(Problem)),
    tags(
        (name = "service", description = "Health, metrics, statistics and this document"),
        (name = "inventory", description = "MDM inventory and devices"),
        (name = "device-state", description = "Device lock and app state events"),
        (name = "baselines", description = "Roles, baselines and exceptions"),
        (name = "learning", description = "Learning-mode baseline proposals"),
        (name = "alerts", description = "Findings and alerts"),
        (name = "audit", description = "Audit log of baseline, exception and alert changes"),
    )
)]
struct AnnotatedDoc;

fn method_of(spec: &RouteSpec) -> Option<HttpMethod> {
    Some(match spec.method.as_str() {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        "HEAD" => HttpMethod::Head,
        _ => return None,
    })
}

/// The operation of `doc` at `path` and `method`, if documented.
pub fn operation_mut<'a>(
    doc: &'a mut OpenApiDoc,
    path: &str,
    method: &HttpMethod,
) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Head => item.head.as_mut(),
        HttpMethod::Options => item.options.as_mut(),
        HttpMethod::Trace => item.trace.as_mut(),
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn add_response(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| problem_response(description).into());
}

/// Adds the error responses implied by `spec` to its operation.
fn complete_operation(op: &mut Operation, spec: &RouteSpec) {
    if spec.access != Access::Public {
        add_response(op, "401", "No bearer token, or an unknown or revoked one");
        add_response(op, "403", "The token's role does not allow this route");
    }
    if spec.access.is_write() {
        add_response(
            op,
            "429",
            "The token's write rate limit is reached (see Retry-After)",
        );
    }
    if spec.body != BodyKind::None {
        add_response(
            op,
            "400",
            "The body is not acceptable; `field` names the failing field",
        );
        add_response(op, "413", "The body is larger than this route accepts");
    }
    if spec.path.contains('{') {
        add_response(op, "404", "No such resource");
    }
    if spec.method != axum::http::Method::GET || spec.path.contains('{') {
        add_response(op, "400", "A path or query parameter is not acceptable");
    }
}

/// The complete OpenAPI document.
pub fn document() -> OpenApiDoc {
    let mut doc = AnnotatedDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER_SCHEME,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        BEARER_SCHEME,
        Vec::<String>::new(),
    )]);
    for spec in route_specs() {
        let Some(method) = method_of(&spec) else {
            continue;
        };
        if let Some(op) = operation_mut(&mut doc, spec.path, &method) {
            complete_operation(op, &spec);
        }
    }
    doc
}

/// The document as pretty-printed JSON.
pub fn document_json() -> Result<String, serde_json::Error> {
    document().to_pretty_json()
}
