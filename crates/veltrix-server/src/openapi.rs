//! The OpenAPI 3.1 description served at `GET /openapi.json`.
//!
//! Hand-written rather than derived (utoipa): the handlers take raw bodies
//! and build JSON with `json!`, so a derive would need parallel types for
//! every shape. Instead the paths come from [`routes`] (the same list the
//! router is built from), each route's text from [`describe`], and a test
//! checks that every route has a description, so the document cannot lose
//! a route. Response bodies are described loosely (`object`) except the
//! error shape, which every route shares.

use crate::routes::{Access, routes};
use serde_json::{Map, Value, json};

/// What the document says about one route.
pub struct Info {
    pub summary: &'static str,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// Request body: (media types, description).
    pub body: Option<(&'static [&'static str], &'static str)>,
    /// Statuses besides 200 and the auth ones, with when.
    pub errors: &'static [(u16, &'static str)],
}

const NDJSON: &[&str] = &["application/json", "application/x-ndjson"];
const JSON: &[&str] = &["application/json"];
const TOML: &[&str] = &["application/toml", "text/plain", "application/json"];

/// The description of a route, `None` for a route nobody described (the
/// tests refuse that).
pub fn describe(method: &str, path: &str) -> Option<Info> {
    let page: &'static [(&str, &str)] = &[
        ("offset", "rows to skip (default 0)"),
        ("limit", "rows to return (default 100, at most 1000)"),
    ];
    let info = match (method, path) {
        ("POST", "/v1/events") => Info {
            summary: "Ingest one event, a JSON array of events, or NDJSON; answered once durable",
            query: &[],
            body: Some((
                NDJSON,
                "an event object, an array of events, or NDJSON lines",
            )),
            errors: &[
                (400, "malformed body"),
                (413, "body or event count too large"),
                (429, "engine queue full"),
                (503, "log failed"),
            ],
        },
        ("GET", "/v1/state") => Info {
            summary: "The whole state dump (SPEC §3)",
            query: &[],
            body: None,
            errors: &[(429, "engine queue full")],
        },
        ("GET", "/v1/players/{player}") => Info {
            summary: "A player's points, balances, badges and hunts",
            query: &[],
            body: None,
            errors: &[(404, "unknown player")],
        },
        ("GET", "/v1/players/{player}/ledger") => Info {
            summary: "A player's grants (with provenance) and spends, in log order",
            query: &[],
            body: None,
            errors: &[(404, "unknown player")],
        },
        ("POST", "/v1/players/{player}/spend") => Info {
            summary: "Spend currency, idempotent per key",
            query: &[],
            body: Some((JSON, "{\"currency\", \"amount\", \"key\"}")),
            errors: &[
                (400, "bad request or unknown currency"),
                (404, "unknown player"),
                (409, "insufficient balance"),
                (503, "log failed"),
            ],
        },
        ("GET", "/v1/players/{player}/hunts/{hunt}") => Info {
            summary: "A player's progress in a hunt: active stages, clues, puzzle text",
            query: &[],
            body: None,
            errors: &[(404, "unknown hunt")],
        },
        ("GET", "/v1/hunts/{hunt}") => Info {
            summary: "A hunt's funnel: players per stage, completions, prizes left",
            query: &[],
            body: None,
            errors: &[(404, "unknown hunt")],
        },
        ("GET", "/v1/leaderboards/{name}") => Info {
            summary: "A page of a leaderboard",
            query: page,
            body: None,
            errors: &[(400, "invalid query"), (404, "unknown leaderboard")],
        },
        ("GET", "/v1/leaderboards/{name}/players/{player}") => Info {
            summary: "A player's row on a leaderboard with neighbours",
            query: &[("around", "neighbours on each side (default 0, at most 500)")],
            body: None,
            errors: &[
                (400, "invalid query"),
                (404, "unknown leaderboard or player not ranked"),
            ],
        },
        ("GET", "/v1/views/{view}") => Info {
            summary: "Buckets of an analytics view; other query keys filter by dimension",
            query: &[
                (
                    "from",
                    "RFC 3339 time or Unix ms, rounded down to its bucket",
                ),
                ("to", "RFC 3339 time or Unix ms, exclusive"),
            ],
            body: None,
            errors: &[(400, "invalid query"), (404, "unknown view")],
        },
        ("GET", "/v1/deadletters") => Info {
            summary: "Rejected events with reasons, oldest first",
            query: page,
            body: None,
            errors: &[(400, "invalid query")],
        },
        ("POST", "/v1/deadletters/replay") => Info {
            summary: "Re-submit dead letters through ingest; accepted and duplicate ones leave the list",
            query: &[],
            body: Some((
                JSON,
                "empty or {} for all, {\"ids\": [...]} or {\"indexes\": [...]}",
            )),
            errors: &[
                (400, "bad request or index out of range"),
                (503, "log failed"),
            ],
        },
        ("GET", "/v1/stream") => Info {
            summary: "Server-sent events of durable changes (text/event-stream)",
            query: &[
                (
                    "kinds",
                    "comma-separated: grant, stage_solved, hunt_completed, leaderboard, config",
                ),
                ("player", "only messages about this player"),
            ],
            body: None,
            errors: &[(400, "invalid query"), (503, "too many stream clients")],
        },
        ("GET", "/v1/config") => Info {
            summary: "The active configuration version, the seq it took effect at, and the history [{version, seq}]",
            query: &[],
            body: None,
            errors: &[(429, "engine queue full")],
        },
        ("POST", "/v1/config") => Info {
            summary: "Apply a configuration at the next log position (recorded, replayed on restart): {\"changed\", \"version\", \"previous_version\", \"seq\", \"report\"}; answered once durable",
            query: &[],
            body: Some((
                TOML,
                "TOML text, or JSON {\"files\": {\"name.toml\": \"text\"}} (Content-Type: application/json)",
            )),
            errors: &[
                (400, "unreadable body"),
                (
                    409,
                    "config_refused: the state cannot take the configuration (e.g. it drops a currency players hold)",
                ),
                (413, "body too large"),
                (
                    422,
                    "invalid_config: the configuration does not compile; details.diagnostics",
                ),
                (429, "engine queue full"),
                (503, "log failed"),
            ],
        },
        ("POST", "/v1/config/check") => Info {
            summary: "Validate a configuration without applying it: {\"valid\", \"version\", \"diagnostics\"}",
            query: &[],
            body: Some((
                TOML,
                "TOML text, or JSON {\"files\": {\"name.toml\": \"text\"}} (Content-Type: application/json)",
            )),
            errors: &[(400, "unreadable body"), (413, "body too large")],
        },
        ("GET", "/healthz") => Info {
            summary: "Liveness: the process serves HTTP",
            query: &[],
            body: None,
            errors: &[],
        },
        ("GET", "/readyz") => Info {
            summary: "Readiness: the log works and the engine answers",
            query: &[],
            body: None,
            errors: &[(503, "log failed or engine queue full")],
        },
        ("GET", "/metrics") => Info {
            summary: "Prometheus / OpenMetrics text",
            query: &[],
            body: None,
            errors: &[],
        },
        ("GET", "/openapi.json") => Info {
            summary: "This document",
            query: &[],
            body: None,
            errors: &[],
        },
        _ => return None,
    };
    Some(info)
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in routes() {
        let info = describe(route.method, route.path).unwrap_or(Info {
            summary: "",
            query: &[],
            body: None,
            errors: &[],
        });
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(info.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
        }));
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}),
        );
        for (status, when) in info.errors {
            responses.insert(status.to_string(), error_response(when));
        }
        let mut operation = json!({
            "summary": info.summary,
            "operationId": format!("{} {}", route.method, route.path),
            "parameters": parameters,
        });
        match route.access {
            Access::Open => {
                operation["security"] = json!([]);
            }
            Access::Key(scope) => {
                operation["security"] = json!([{"bearer": [scope.name()]}]);
                operation["x-veltrix-scope"] = json!(scope.name());
                responses.insert(
                    "401".into(),
                    error_response("no API key, or an unknown one (only when keys are configured)"),
                );
                responses.insert(
                    "403".into(),
                    error_response("the API key lacks the scope (admin has every scope)"),
                );
            }
        }
        operation["responses"] = Value::Object(responses);
        if let Some((types, description)) = info.body {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({"schema": {}})))
                .collect();
            operation["requestBody"] = json!({"description": description, "content": content});
        }
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Veltrix",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Veltrix HTTP API; see docs/SERVER.md. With [[server.api_keys]] configured, routes need Authorization: Bearer <key> with the scope in x-veltrix-scope (admin implies every scope).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key; scopes: ingest, read, admin"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message", "details"],
                        "properties": {
                            "code": {"type": "string", "description": "stable machine-readable word"},
                            "message": {"type": "string"},
                            "details": {"description": "null or an object with more facts (suggestion, limits)"},
                        },
                    }},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let document = document();
        for route in routes() {
            assert!(
                describe(route.method, route.path).is_some(),
                "{} {} has no description in openapi::describe",
                route.method,
                route.path
            );
            let operation = &document["paths"][route.path][route.method.to_ascii_lowercase()];
            assert!(
                operation.is_object(),
                "{} {} missing",
                route.method,
                route.path
            );
            for name in route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                assert!(
                    operation["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{} {}: path parameter {name} undocumented",
                    route.method,
                    route.path
                );
            }
        }
        let documented: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            routes().len(),
            "the document has routes the router lacks"
        );
    }
}
