//! HTTP routes: parse and check requests, send one command to the engine
//! thread, render its answer. JSON shapes live here; the state dump and the
//! read models are core's.

use crate::auth::{Guard, Keys};
use crate::engine::{Command, Core, Handle, Item, Selection, SpendRequest};
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::oneshot;
use veltrix_config::Scope;
use veltrix_core::analytics::{ViewQuery, dimension_name, query_view};
use veltrix_core::boards::bucket_of;
use veltrix_core::dump::{DumpSource, dump, player_json};
use veltrix_core::views;

/// Per-router settings shared by the handlers.
#[derive(Clone)]
pub struct App {
    pub handle: Handle,
    pub body_limit: usize,
    /// Request bodies in flight, in KiB (see [`body_budget`]).
    pub body_budget: Arc<tokio::sync::Semaphore>,
    pub max_events_per_request: usize,
    /// Becomes true when the server stops (ends the live streams).
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// API keys from `[[server.api_keys]]`; empty: every route is open
    /// (the server then binds loopback only).
    pub keys: Keys,
}

/// Request bodies the server holds at once: eight full-size bodies, and at
/// least 128 MiB. A request that cannot reserve its size (its
/// `Content-Length`, or the body limit for a chunked body of unknown size)
/// is refused with 429 before its body is read, so memory stays bounded
/// however many clients send large bodies at once.
pub fn body_budget(body_limit: usize) -> Arc<tokio::sync::Semaphore> {
    let bytes = body_limit.saturating_mul(8).max(128 << 20);
    Arc::new(tokio::sync::Semaphore::new(kib(bytes) as usize))
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Reserves room for one request body (see [`body_budget`]); the permit is
/// held until the request is answered.
fn reserve_body(app: &App, body: &Body) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    // Exact when the request has a Content-Length (or is already in memory).
    let declared = axum::body::HttpBody::size_hint(body)
        .upper()
        .and_then(|n| usize::try_from(n).ok());
    if let Some(length) = declared
        && length > app.body_limit
    {
        return Err(ApiError::too_large(app.body_limit));
    }
    let size = declared.unwrap_or(app.body_limit).max(1);
    app.body_budget
        .clone()
        .try_acquire_many_owned(kib(size))
        .map_err(|_| {
            app.handle.shared.metrics.overloaded.inc();
            ApiError::overloaded()
        })
}

/// Requests with at least this many events are parsed on the blocking pool.
const PARSE_ON_BLOCKING_POOL: usize = 64;

/// Most bytes of a spend request.
const SPEND_BODY_LIMIT: usize = 64 * 1024;
/// Default and largest page of a list.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Who may call a route when API keys are configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key needed: health, readiness, metrics and the API description.
    Open,
    /// A key with this scope (or `admin`).
    Key(Scope),
}

/// One route: method, path (axum syntax), who may call it and its handler.
/// The router, the guards and the OpenAPI document are all built from
/// [`routes`], so no route can miss its guard or its documentation.
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<App>,
}

/// Every route of the API.
pub fn routes() -> Vec<RouteSpec> {
    use Access::{Key, Open};
    use Scope::{Admin, Ingest, Read};
    fn r(
        method: &'static str,
        path: &'static str,
        access: Access,
        handler: MethodRouter<App>,
    ) -> RouteSpec {
        RouteSpec {
            method,
            path,
            access,
            handler,
        }
    }
    vec![
        r("POST", "/v1/events", Key(Ingest), post(post_events)),
        r("GET", "/v1/state", Key(Admin), get(get_state)),
        r("GET", "/v1/players/{player}", Key(Read), get(get_player)),
        r(
            "GET",
            "/v1/players/{player}/ledger",
            Key(Read),
            get(get_ledger),
        ),
        r(
            "POST",
            "/v1/players/{player}/spend",
            Key(Ingest),
            post(post_spend),
        ),
        r(
            "GET",
            "/v1/players/{player}/hunts/{hunt}",
            Key(Read),
            get(get_player_hunt),
        ),
        r("GET", "/v1/hunts/{hunt}", Key(Read), get(get_hunt)),
        r(
            "GET",
            "/v1/leaderboards/{name}",
            Key(Read),
            get(get_leaderboard),
        ),
        r(
            "GET",
            "/v1/leaderboards/{name}/players/{player}",
            Key(Read),
            get(get_leaderboard_player),
        ),
        r("GET", "/v1/views/{view}", Key(Read), get(get_view)),
        r("GET", "/v1/deadletters", Key(Read), get(get_deadletters)),
        r(
            "POST",
            "/v1/deadletters/replay",
            Key(Admin),
            post(post_deadletters_replay),
        ),
        r("GET", "/v1/stream", Key(Read), get(get_stream)),
        r("GET", "/v1/config", Key(Admin), get(get_config)),
        r("POST", "/v1/config", Key(Admin), post(post_config)),
        r(
            "POST",
            "/v1/config/check",
            Key(Admin),
            post(post_config_check),
        ),
        r("GET", "/healthz", Open, get(healthz)),
        r("GET", "/readyz", Open, get(readyz)),
        r("GET", "/metrics", Open, get(get_metrics)),
        r("GET", "/openapi.json", Open, get(get_openapi)),
    ]
}

pub fn router(app: App) -> Router {
    let mut router = Router::new();
    for spec in routes() {
        let handler = match spec.access {
            Access::Open => spec.handler,
            Access::Key(scope) => spec
                .handler
                .route_layer(axum::middleware::from_fn_with_state(
                    Guard {
                        keys: app.keys.clone(),
                        scope,
                    },
                    crate::auth::require,
                )),
        };
        router = router.route(spec.path, handler);
    }
    let metrics = app.handle.shared.clone();
    router
        .fallback(not_found)
        .with_state(app)
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn_with_state(metrics, time_reads))
}

/// Observes `veltrix_read_request_seconds` for reads: `GET /v1/…` except
/// the live stream, which stays open.
async fn time_reads(
    State(shared): State<Arc<crate::engine::Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let is_read = request.method() == axum::http::Method::GET
        && path.starts_with("/v1/")
        && path != "/v1/stream";
    if !is_read {
        return next.run(request).await;
    }
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    shared
        .metrics
        .read_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

/// axum's own rejections (a path segment that is not valid UTF-8, a wrong
/// method, …) are plain text; rewrite every non-JSON error into the API's
/// error shape so clients parse one format.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route; see docs/SERVER.md",
    )
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request("unreadable_body", format!("cannot read the body: {e}"))
        }
    })
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v.starts_with("application/x-ndjson") || v.starts_with("application/jsonl")
        })
}

/// Splits an ingest body into events: NDJSON lines, the elements of a JSON
/// array, or a single object. Each item is a slice of the body. A malformed
/// NDJSON line is an item too (core rejects it with the reason); a
/// malformed array is a 400 for the whole request, since its elements
/// cannot be told apart.
pub fn split_body(body: &Bytes, ndjson: bool) -> Result<Vec<Item>, ApiError> {
    if ndjson {
        return Ok(veltrix_core::ndjson_lines(body)
            .enumerate()
            .map(|(index, (line, text))| Item {
                index,
                line: Some(line),
                bytes: body.slice_ref(text),
            })
            .collect());
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(ApiError::bad_request(
            "empty_body",
            "the body holds no event: send one JSON object, a JSON array, or NDJSON with Content-Type: application/x-ndjson",
        )),
        Some(b'[') => {
            let elements: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
                .map_err(|e| {
                    ApiError::bad_request("malformed_json", format!("malformed JSON array: {e}"))
                })?;
            Ok(elements
                .into_iter()
                .enumerate()
                .map(|(index, raw)| Item {
                    index,
                    line: None,
                    bytes: body.slice_ref(raw.get().as_bytes()),
                })
                .collect())
        }
        Some(_) => Ok(vec![Item {
            index: 0,
            line: None,
            bytes: body.clone(),
        }]),
    }
}

async fn post_events(State(app): State<App>, headers: HeaderMap, body: Body) -> ApiResult {
    let started = std::time::Instant::now();
    // Refuse cheaply, before reading or parsing anything.
    app.handle.check_room()?;
    let _body_room = reserve_body(&app, &body)?;
    let body = read_body(body, app.body_limit).await?;
    let items = split_body(&body, is_ndjson(&headers))?;
    if items.len() > app.max_events_per_request {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "the request holds {} events; at most {} per request",
                items.len(),
                app.max_events_per_request
            ),
        ));
    }
    // Parse and validate before queueing, so that the engine thread only
    // deduplicates, sequences and applies. A large request parses on the
    // blocking pool, keeping the async workers free for small requests
    // (reads wait behind a busy worker otherwise).
    let plan = app.handle.shared.plan();
    let (items, parsed) = if items.len() >= PARSE_ON_BLOCKING_POOL {
        tokio::task::spawn_blocking(move || {
            crate::priority::request_short_slice(std::time::Duration::ZERO);
            let parsed = crate::engine::Parsed::new_yielding(plan, &items);
            (items, parsed)
        })
        .await
        .map_err(|_| ApiError::unavailable("parsing the request failed"))?
    } else {
        let parsed = crate::engine::Parsed::new(plan, &items);
        (items, parsed)
    };
    let parsed = Some(parsed);
    let (reply, answer) = oneshot::channel();
    app.handle.send(Command::Ingest {
        items,
        parsed,
        reply,
    })?;
    let answer = answer.await.map_err(|_| closed())??;
    app.handle
        .shared
        .metrics
        .ingest_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(answer).into_response())
}

fn closed() -> ApiError {
    ApiError::unavailable(
        "the write was not acknowledged (the log failed or the server is stopping); it may or may not be applied after a restart, so retry it: retries are idempotent",
    )
}

async fn post_spend(State(app): State<App>, Path(player): Path<String>, body: Body) -> ApiResult {
    let body = read_body(body, SPEND_BODY_LIMIT).await?;
    let request: SpendRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("expected {{\"currency\", \"amount\", \"key\"}}: {e}"),
        )
    })?;
    let (reply, answer) = oneshot::channel();
    app.handle.send(Command::Spend {
        player,
        request,
        reply,
    })?;
    ok(answer.await.map_err(|_| closed())??)
}

async fn get_state(State(app): State<App>) -> ApiResult {
    // Serialized on the engine thread: the dump borrows engine state.
    let bytes = app
        .handle
        .read(|core: &Core| {
            let source = DumpSource::from_engine(&core.ingest, &core.engine);
            // Invariant: the dump holds only strings, numbers, maps and lists.
            serde_json::to_vec(&dump(&source)).expect("state dump serializes")
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

async fn get_player(State(app): State<App>, Path(player): Path<String>) -> ApiResult {
    let found = app
        .handle
        .read(move |core: &Core| {
            core.engine
                .player(&player)
                .map(|state| {
                    let mut value = player_json(&core.plan.config, state);
                    value["player"] = json!(&*state.name);
                    value
                })
                .ok_or_else(|| ApiError::not_found("player", &player, []))
        })
        .await??;
    ok(found)
}

async fn get_ledger(State(app): State<App>, Path(player): Path<String>) -> ApiResult {
    let found = app
        .handle
        .read(move |core: &Core| {
            views::ledger(&core.engine, &player)
                .map(|entries| json!({"player": player, "entries": entries}))
                .ok_or_else(|| ApiError::not_found("player", &player, []))
        })
        .await??;
    ok(found)
}

fn hunt_id(core: &Core, hunt: &str) -> Result<u16, ApiError> {
    let config = &core.plan.config;
    config.hunt(hunt).ok_or_else(|| {
        ApiError::not_found("hunt", hunt, config.hunts.iter().map(|h| h.name.as_str()))
    })
}

async fn get_player_hunt(
    State(app): State<App>,
    Path((player, hunt)): Path<(String, String)>,
) -> ApiResult {
    let found = app
        .handle
        .read(move |core: &Core| {
            let id = hunt_id(core, &hunt)?;
            let progress = views::hunt_progress(&core.engine, &player, id)
                .ok_or_else(|| ApiError::not_found("hunt", &hunt, []))?;
            let mut value = json!(progress);
            value["player"] = json!(player);
            Ok::<_, ApiError>(value)
        })
        .await??;
    ok(found)
}

async fn get_hunt(State(app): State<App>, Path(hunt): Path<String>) -> ApiResult {
    let found = app
        .handle
        .read(move |core: &Core| {
            let id = hunt_id(core, &hunt)?;
            views::funnel(&core.engine, id)
                .map(|f| json!(f))
                .ok_or_else(|| ApiError::not_found("hunt", &hunt, []))
        })
        .await??;
    ok(found)
}

/// Reads an unsigned query parameter; a bad value is a 400, not axum's
/// plain-text rejection.
fn query_usize(
    query: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match query.iter().rev().find(|(k, _)| k == name) {
        None => Ok(default),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!("{name}: expected a whole number from 0 to {max}, got {v:?}"),
            )),
        },
    }
}

fn leaderboard_index(core: &Core, name: &str) -> Result<usize, ApiError> {
    let config = &core.plan.config;
    config.leaderboard(name).ok_or_else(|| {
        ApiError::not_found(
            "leaderboard",
            name,
            config.leaderboards.iter().map(|l| l.name.as_str()),
        )
    })
}

/// The bucket a period leaderboard shows: the one holding the greatest
/// event time accepted (as in the state dump).
fn current_bucket(core: &Core, index: usize) -> i64 {
    let period = core.plan.config.leaderboards[index].period;
    bucket_of(period, core.engine.max_ts.unwrap_or(0))
}

async fn get_leaderboard(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let offset = query_usize(&query, "offset", 0, usize::MAX)?;
    let limit = query_usize(&query, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = app
        .handle
        .read(move |core: &Core| {
            let index = leaderboard_index(core, &name)?;
            let boards = &core.engine.boards;
            let board = boards.board(index, current_bucket(core, index));
            let rows: Vec<_> = board
                .map(|b| {
                    b.page(offset, limit)
                        .into_iter()
                        .map(|r| boards.named(r))
                        .collect()
                })
                .unwrap_or_default();
            let total = board.map_or(0, |b| b.len());
            Ok::<_, ApiError>(json!({"leaderboard": name, "rows": rows, "total": total}))
        })
        .await??;
    ok(found)
}

async fn get_leaderboard_player(
    State(app): State<App>,
    Path((name, player)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let around = query_usize(&query, "around", 0, MAX_LIMIT / 2)?;
    let found = app
        .handle
        .read(move |core: &Core| {
            let index = leaderboard_index(core, &name)?;
            let boards = &core.engine.boards;
            let board = boards.board(index, current_bucket(core, index));
            let id = boards.player_id(&player);
            let (Some(board), Some(id)) = (board, id) else {
                return Err(not_ranked(&name, &player));
            };
            let Some(row) = board.row(id) else {
                return Err(not_ranked(&name, &player));
            };
            let rows: Vec<_> = board
                .around(id, around)
                .into_iter()
                .map(|r| boards.named(r))
                .collect();
            Ok(json!({
                "leaderboard": name,
                "player": boards.named(row),
                "rows": rows,
                "total": board.len(),
            }))
        })
        .await??;
    ok(found)
}

fn not_ranked(board: &str, player: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_ranked",
        format!(
            "player \"{player}\" is not on leaderboard \"{board}\" (no points counted toward it in the current period)"
        ),
    )
}

/// A time bound of a view query: RFC 3339 or integer milliseconds since the
/// Unix epoch.
fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "{name}: expected an RFC 3339 time (2026-12-01T09:00:00Z) or milliseconds since the Unix epoch, got {value:?}"
                ),
            )
        })
}

/// Checks a view query: `from`, `to` and one key per dimension of the view;
/// anything else is a 400 with a did-you-mean (a misspelt filter must not
/// silently match every row).
fn view_query(
    view: &veltrix_config::View,
    query: &[(String, String)],
) -> Result<ViewQuery, ApiError> {
    let dimensions: Vec<String> = view.group_by.iter().map(dimension_name).collect();
    let mut parsed = ViewQuery::default();
    for (key, value) in query {
        match key.as_str() {
            "from" => parsed.from = Some(parse_time("from", value)?),
            "to" => parsed.to = Some(parse_time("to", value)?),
            _ if dimensions.iter().any(|d| d == key) => {
                parsed.filters.push((key.clone(), Some(value.clone())));
            }
            _ => {
                let candidates = dimensions.iter().map(String::as_str).chain(["from", "to"]);
                let suggestion = veltrix_config::did_you_mean(key, candidates);
                let known = if dimensions.is_empty() {
                    "it has no dimensions".to_string()
                } else {
                    format!("its dimensions are {}", dimensions.join(", "))
                };
                let message = match &suggestion {
                    Some(s) => format!(
                        "unknown query parameter \"{key}\" for view \"{}\" ({known}); {s}",
                        view.name
                    ),
                    None => format!(
                        "unknown query parameter \"{key}\" for view \"{}\" (expected from, to, or a dimension; {known})",
                        view.name
                    ),
                };
                return Err(ApiError::bad_request("invalid_query", message)
                    .with_details(json!({"suggestion": suggestion, "dimensions": dimensions})));
            }
        }
    }
    if let (Some(from), Some(to)) = (parsed.from, parsed.to)
        && from > to
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("from ({from} ms) is after to ({to} ms)"),
        ));
    }
    Ok(parsed)
}

async fn get_view(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let found = app
        .handle
        .read(move |core: &Core| {
            let config = &core.plan.config;
            let Some(index) = config.views.iter().position(|v| v.name == name) else {
                return Err(ApiError::not_found(
                    "view",
                    &name,
                    config.views.iter().map(|v| v.name.as_str()),
                ));
            };
            let view = &config.views[index];
            let parsed = view_query(view, &query)?;
            let rows = query_view(view, &core.engine.views.views[index], &parsed);
            Ok(json!({"view": view.name, "bucket_ms": view.bucket_ms, "rows": rows}))
        })
        .await??;
    ok(found)
}

async fn get_deadletters(
    State(app): State<App>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let offset = query_usize(&query, "offset", 0, usize::MAX)?;
    let limit = query_usize(&query, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = app
        .handle
        .read(move |core: &Core| {
            let all = &core.ingest.rejected;
            let page: Vec<_> = all
                .iter()
                .enumerate()
                .skip(offset)
                .take(limit)
                .map(|(index, r)| {
                    json!({
                        "index": index,
                        "line": r.line,
                        "id": r.id,
                        "error": r.error,
                        "replayable": core.dead_letter_bodies.get(index).is_some_and(Option::is_some),
                    })
                })
                .collect();
            json!({"rejected": page, "total": all.len()})
        })
        .await?;
    ok(found)
}

async fn get_stream(
    State(app): State<App>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let filter = stream_filter(&query)?;
    let stream = &app.handle.shared.stream;
    if stream.receiver_count() >= crate::stream::MAX_STREAM_CLIENTS {
        return Err(ApiError::unavailable(format!(
            "too many stream clients (at most {})",
            crate::stream::MAX_STREAM_CLIENTS
        )));
    }
    Ok(crate::stream::sse(stream.subscribe(), app.closing.clone(), filter).into_response())
}

/// `?kinds=grant,leaderboard` and `?player=alice`; anything else is a 400
/// with a did-you-mean.
fn stream_filter(query: &[(String, String)]) -> Result<crate::stream::Filter, ApiError> {
    let mut filter = crate::stream::Filter::default();
    for (key, value) in query {
        match key.as_str() {
            "player" => filter.player = Some(value.clone()),
            "kinds" => {
                let mut kinds = Vec::new();
                for kind in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    let Some(known) = crate::stream::KINDS.iter().find(|k| **k == kind) else {
                        let hint = veltrix_config::did_you_mean(kind, crate::stream::KINDS)
                            .map(|s| format!("; {s}"))
                            .unwrap_or_default();
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!(
                                "kinds: unknown kind \"{kind}\" (expected {}){hint}",
                                crate::stream::KINDS.join(", ")
                            ),
                        ));
                    };
                    kinds.push(*known);
                }
                filter.kinds = Some(kinds);
            }
            _ => {
                let hint = veltrix_config::did_you_mean(key, ["kinds", "player"])
                    .map(|s| format!("; {s}"))
                    .unwrap_or_default();
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter \"{key}\" (expected kinds or player){hint}"),
                ));
            }
        }
    }
    Ok(filter)
}

/// The configuration of a `POST /v1/config/check` or `POST /v1/config`
/// body: TOML text (named `veltrix.toml`), or JSON `{"files": {"name":
/// "text"}}` for several files, merged in the order given.
async fn read_config_sources(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<veltrix_config::Source>, ApiError> {
    let _body_room = reserve_body(app, &body)?;
    let body = read_body(body, app.body_limit).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let sources = if is_json {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Files {
            /// File names in the order given (the workspace's serde_json
            /// keeps object order), which is the order files merge in.
            files: serde_json::Map<String, Value>,
        }
        let files: Files = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("expected {{\"files\": {{\"name.toml\": \"text\", ...}}}}: {e}"),
            )
        })?;
        let mut sources = Vec::with_capacity(files.files.len());
        for (name, text) in files.files {
            let Value::String(text) = text else {
                return Err(ApiError::bad_request(
                    "malformed_json",
                    format!("files.{name}: expected the file's text as a string"),
                ));
            };
            sources.push(veltrix_config::Source::new(name, text));
        }
        if sources.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "files: expected at least one file",
            ));
        }
        sources
    } else {
        let text = String::from_utf8(body.to_vec()).map_err(|_| {
            ApiError::bad_request("unreadable_body", "the configuration is not UTF-8 text")
        })?;
        vec![veltrix_config::Source::new("veltrix.toml", text)]
    };
    Ok(sources)
}

/// `POST /v1/config/check`: TOML text, or JSON `{"files": {"name": "text"}}`
/// for several files. Validates only: nothing changes. 200 whether or not
/// the configuration is valid (the answer's `valid` says); 400 only when
/// the request itself is unusable.
async fn post_config_check(State(app): State<App>, headers: HeaderMap, body: Body) -> ApiResult {
    let sources = read_config_sources(&app, &headers, body).await?;
    // Compiling checks puzzle word lists against a dictionary: keep it off
    // the async workers. It never touches the engine.
    let answer = tokio::task::spawn_blocking(move || match veltrix_config::compile(&sources) {
        Ok(config) => json!({"valid": true, "version": config.version, "diagnostics": []}),
        Err(diagnostics) => json!({
            "valid": false,
            "version": null,
            "diagnostics": diagnostics,
        }),
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the configuration check failed unexpectedly",
        )
    })?;
    ok(answer)
}

/// `POST /v1/deadletters/replay`: an empty body (or `{}`) re-submits every
/// dead letter; `{"ids": [...]}` those with these event ids;
/// `{"indexes": [...]}` those at these 0-based positions of the list.
async fn post_deadletters_replay(State(app): State<App>, body: Body) -> ApiResult {
    let body = read_body(body, SPEND_BODY_LIMIT).await?;
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Request {
        ids: Option<Vec<String>>,
        indexes: Option<Vec<usize>>,
    }
    let request: Request = if body.iter().all(u8::is_ascii_whitespace) {
        Request::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("expected {{}}, {{\"ids\": [...]}} or {{\"indexes\": [...]}}: {e}"),
            )
        })?
    };
    let selection = match (request.ids, request.indexes) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "bad_request",
                "give ids or indexes, not both",
            ));
        }
        (Some(ids), None) => Selection::Ids(ids),
        (None, Some(indexes)) => Selection::Indexes(indexes),
        (None, None) => Selection::All,
    };
    let (reply, answer) = oneshot::channel();
    app.handle
        .send(Command::ReplayDeadLetters { selection, reply })?;
    ok(answer.await.map_err(|_| closed())??)
}

async fn get_openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

/// `GET /v1/config`: the active version, the seq it took effect at and
/// every version the log recorded.
async fn get_config(State(app): State<App>) -> ApiResult {
    let answer = app
        .handle
        .read(|core| {
            json!({
                "version": core.plan.config.version,
                "seq": core.config_history.last().map(|h| h.seq),
                "history": core.config_history,
            })
        })
        .await?;
    ok(answer)
}

/// `POST /v1/config`: compiles the body (as `/v1/config/check`); invalid is
/// a 422 `invalid_config` with the diagnostics; valid goes to the engine
/// thread, which switches at the next log position and answers once the
/// `ConfigSwitch` record is durable (409 `config_refused` when the state
/// cannot take it; `"changed": false` for the active version).
async fn post_config(State(app): State<App>, headers: HeaderMap, body: Body) -> ApiResult {
    let sources = read_config_sources(&app, &headers, body).await?;
    let pairs: Vec<(String, String)> = sources
        .iter()
        .map(|s| (s.name.clone(), s.text.clone()))
        .collect();
    let compiled = tokio::task::spawn_blocking(move || veltrix_config::compile(&sources))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "compiling the configuration failed unexpectedly",
            )
        })?;
    let config = match compiled {
        Ok(config) => std::sync::Arc::new(config),
        Err(diagnostics) => {
            let errors = diagnostics.len();
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                format!("the configuration is not valid ({errors} diagnostic(s)); nothing changed"),
            )
            .with_details(json!({ "diagnostics": diagnostics })));
        }
    };
    let (reply, answer) = oneshot::channel();
    app.handle.send(Command::ApplyConfig {
        config,
        sources: pairs,
        reply,
    })?;
    ok(answer.await.map_err(|_| closed())??)
}

async fn get_metrics(State(app): State<App>) -> Response {
    let shared = &app.handle.shared;
    shared
        .metrics
        .stream_clients
        .set(shared.stream.receiver_count() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> ApiResult {
    ok(json!({"status": "ok"}))
}

/// Ready when the log takes writes (not failed, or reopened after a full
/// disk), the engine queue has room and the state can be read.
async fn readyz(State(app): State<App>) -> ApiResult {
    if app.handle.shared.is_failed() {
        return Err(ApiError::unavailable(app.handle.shared.refusal().message));
    }
    if !app.handle.queue_has_room()? {
        return Err(ApiError::unavailable("the engine queue is full"));
    }
    let next_seq = app.handle.read(|core: &Core| core.ingest.next_seq).await?;
    ok(json!({"status": "ready", "last_seq": next_seq - 1}))
}
