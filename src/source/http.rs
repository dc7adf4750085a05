//! HTTP ingest and the admin endpoints of `strata run` (the `[http]` table).
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /v1/stations/{station}/messages` | NDJSON body, or a JSON array of the same objects ([`crate::ndjson`]); `200 {"accepted","duplicates","first_seq","last_seq"}` once the WAL has made the batch durable (fsync) |
//! | `POST /v1/flush` | runs the [`FlushHandle`] (seal, compact, upload); `200` with its JSON summary |
//! | `GET /healthz` | `200 ok`, or `503` with JSON naming every problem ([`crate::health`]) |
//! | `GET /metrics` | Prometheus text, or OpenMetrics when `Accept` asks for it ([`crate::metrics`]) |
//! | `GET /v1/status` | JSON: per station, WAL, last upload, identity figures ([`crate::status`]) |
//! | `GET /` | the status page: the same figures as HTML, reloaded by the browser |
//!
//! Errors are JSON `{"error": "...", "line": N, "field": "..."}` (`line` and
//! `field` only for bad input): `400` bad body or station name (nothing of
//! the request is stored: the whole body is parsed before anything is
//! appended), `401` missing or wrong `Authorization: Bearer <token>` when a
//! token is configured (messages, flush, status and the status page; health
//! and metrics stay open; status and the page also take `?token=<token>`, so
//! a browser can open the page),
//! `404` unknown path, `413` body over `max_body_bytes` (or a batch too large for
//! one WAL entry), `503` + `Retry-After` while the WAL is full or closing or
//! while the bodies of requests in flight hold `max_inflight_bytes`
//! ([`ByteBudget`]), `500` any other WAL error.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{CompactionConfig, HttpConfig, Secret};
use crate::health::Health;
use crate::message::StationName;
use crate::metrics::{Format as MetricsFormat, Metrics};
use crate::ndjson;
use crate::source::budget::{ByteBudget, Reservation};
use crate::source::owners::NatsStations;
use crate::status::{self, Uploads};
use crate::wal::{Appended, Wal, WalError};

/// Seconds a client is told to wait (`Retry-After`) while the WAL is full.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Bodies larger than this are parsed on a blocking thread so that a large
/// request cannot stall the async workers serving everyone else.
const PARSE_INLINE_MAX: usize = 1 << 20;

/// The metrics `source` label of this source.
const SOURCE: &str = "http";

/// What `POST /v1/flush` runs: seal the WAL, compact and upload, and report.
#[async_trait::async_trait]
pub trait FlushHandle: Send + Sync {
    /// Flushes everything durable so far to the archive.
    ///
    /// # Errors
    /// A message for the client saying what failed.
    async fn flush(&self) -> Result<serde_json::Value, String>;
}

/// Everything the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The WAL that ingested messages go to.
    pub wal: Wal,
    /// The process metrics (served by `/metrics`, updated per request).
    pub metrics: Arc<Metrics>,
    /// When set, `Authorization: Bearer <token>` is required for ingest and flush.
    pub token: Option<Secret>,
    /// What `POST /v1/flush` runs; `None` answers 503.
    pub flush: Option<Arc<dyn FlushHandle>>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Stations the NATS source archives: refused here (`409`).
    pub nats_stations: NatsStations,
    /// Request body bytes all requests together may hold (`max_inflight_bytes`).
    pub inflight: ByteBudget,
    /// What `GET /healthz` reports.
    pub health: Arc<Health>,
    /// The last uploads, for `GET /v1/status` (the compactor fills it in).
    pub uploads: Arc<Uploads>,
    /// This process, as `GET /v1/status` names it (`hostname:pid`).
    pub owner: String,
    /// With `[nats]`: this process as a cluster member, for `GET /v1/status`.
    pub cluster: Option<crate::cluster::coordinator::SharedStatus>,
}

impl HttpState {
    /// State from the `[http]` table, without a flush handle, with a health
    /// of its own that watches `wal` (see [`HttpState::with_health`]).
    pub fn new(wal: Wal, metrics: Arc<Metrics>, config: &HttpConfig) -> Self {
        let health = Health::new(CompactionConfig::default().unhealthy_after).with_wal(wal.clone());
        Self {
            health: Arc::new(health),
            wal,
            metrics,
            token: config.token.clone().filter(|t| !t.is_empty()),
            flush: None,
            max_body_bytes: config.max_body_bytes,
            inflight: ByteBudget::new(config.max_inflight_bytes),
            nats_stations: NatsStations::default(),
            uploads: Arc::default(),
            owner: status::this_owner(),
            cluster: None,
        }
    }

    /// Sets the cluster member `GET /v1/status` reports.
    pub fn with_cluster(mut self, cluster: crate::cluster::coordinator::SharedStatus) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Sets the uploads `GET /v1/status` reports (the compactor's).
    pub fn with_uploads(mut self, uploads: Arc<Uploads>) -> Self {
        self.uploads = uploads;
        self
    }

    /// Sets the stations the NATS source archives (refused with `409`).
    pub fn with_nats_stations(mut self, stations: NatsStations) -> Self {
        self.nats_stations = stations;
        self
    }

    /// Sets the health `GET /healthz` reports (the process's shared one).
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = health;
        self
    }

    /// Sets what `POST /v1/flush` runs.
    pub fn with_flush(mut self, flush: Arc<dyn FlushHandle>) -> Self {
        self.flush = Some(flush);
        self
    }
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("wal", &self.wal)
            .field("token", &self.token)
            .field("flush", &self.flush.as_ref().map(|_| "<flush handle>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_inflight_bytes", &self.inflight.max())
            .finish_non_exhaustive()
    }
}

/// The router of `strata run`'s HTTP server.
pub fn router(state: HttpState) -> Router {
    let state = Arc::new(state);
    let guarded = Router::new()
        .route("/v1/stations/{station}/messages", post(ingest))
        .route("/v1/flush", post(flush))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    let readable = Router::new()
        .route("/v1/status", get(status_json))
        .route("/", get(status_page))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token_or_query,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(guarded)
        .merge(readable)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_status,
        ))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (their appends complete and are answered).
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

type Shared = State<Arc<HttpState>>;

/// The answer to a successful ingest request.
#[derive(Debug, Serialize)]
struct IngestReply {
    accepted: usize,
    duplicates: usize,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
}

/// An error answer: a status and a JSON body naming what was wrong.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: bool,
    /// The request body was not read to its end: the connection must close.
    close: bool,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                line: None,
                field: None,
            },
            retry_after: false,
            close: false,
        }
    }
}

impl From<ndjson::LineError> for ApiError {
    fn from(e: ndjson::LineError) -> Self {
        let mut err = Self::new(StatusCode::BAD_REQUEST, e.to_string());
        err.body.line = Some(e.line);
        err.body.field = Some(e.field);
        err
    }
}

impl From<WalError> for ApiError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Full { .. } | WalError::Closed => Self {
                retry_after: true,
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            },
            WalError::SeqOutOfRange(_) => Self::new(StatusCode::BAD_REQUEST, e.to_string()),
            // The client sent more than one entry holds: its fault, and it can split.
            WalError::BatchTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            e => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"strata\""),
            );
        }
        if self.close {
            // The rest of the body is never read: close the connection so a
            // client reusing it does not send its next request into that body.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `POST /v1/stations/{station}/messages`
async fn ingest(
    State(state): Shared,
    station: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Json<IngestReply>, ApiError> {
    let Path(station) = station.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let station = StationName::new(station).map_err(|e| {
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
        err.body.field = Some("station".to_string());
        err
    })?;
    if state.nats_stations.contains(&station) {
        let mut err = ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "station {station} is archived from the NATS stream {station}, which assigns its \
                 seqs: publish to the stream instead, or send to a station no stream feeds"
            ),
        );
        err.body.field = Some("station".to_string());
        return Err(err);
    }
    // Held until the answer: the body and what is parsed from it.
    let (body, _reservation) = read_body(&state, request).await?;
    let drafts = if body.len() <= PARSE_INLINE_MAX {
        ndjson::parse_body_bytes(&body, Some(&station))?
    } else {
        let station = station.clone();
        tokio::task::spawn_blocking(move || ndjson::parse_body_bytes(&body, Some(&station)))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("parsing the body failed unexpectedly: {e}"),
                )
            })??
    };
    if drafts.is_empty() {
        return Ok(Json(IngestReply {
            accepted: 0,
            duplicates: 0,
            first_seq: None,
            last_seq: None,
        }));
    }
    let appended = match state.wal.append(drafts).await {
        Ok(appended) => appended,
        Err(e) => {
            if matches!(e, WalError::Full { .. }) {
                state.metrics.inc_wal_full(SOURCE);
            }
            tracing::warn!(station = %station, error = %e, "HTTP ingest not stored");
            return Err(e.into());
        }
    };
    state
        .metrics
        .inc_appended(station.as_str(), SOURCE, &appended);
    Ok(Json(reply(&station, &appended)))
}

fn reply(station: &StationName, appended: &Appended) -> IngestReply {
    let ranges = appended.ranges.iter().filter(|(s, _, _)| s == station);
    IngestReply {
        accepted: appended.accepted,
        duplicates: appended.duplicates,
        first_seq: ranges.clone().map(|(_, first, _)| *first).min(),
        last_seq: ranges.map(|(_, _, last)| *last).max(),
    }
}

/// Reads the request body, refusing it (before reading any of it when its
/// length is announced) when it is over `max_body_bytes` (413) or when the
/// bodies of the requests in flight leave no room for it (503).
async fn read_body(state: &HttpState, request: Request) -> Result<(Bytes, Reservation), ApiError> {
    let max = state.max_body_bytes;
    let mut reservation = state.inflight.reservation();
    let announced = content_length(request.headers());
    if let Some(len) = announced {
        if len > max as u64 {
            return Err(too_large(max));
        }
        // At most max_body_bytes, so it fits a usize.
        if !reservation.grow(len as usize) {
            return Err(busy(&state.inflight));
        }
    }
    let mut buf = bytes::BytesMut::with_capacity(reservation.bytes());
    let mut stream = request.into_body().into_data_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|e| {
            let mut err = ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
            err.close = true;
            err
        })?;
        let total = buf.len() + chunk.len();
        if total > max {
            return Err(too_large(max));
        }
        // An unannounced (chunked) body takes its bytes as they arrive.
        if total > reservation.bytes() && !reservation.grow(total - reservation.bytes()) {
            return Err(busy(&state.inflight));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), reservation))
}

fn busy(budget: &ByteBudget) -> ApiError {
    ApiError {
        retry_after: true,
        close: true,
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many request bytes in flight (max_inflight_bytes {} bytes, {} in use): \
                 retry later, or raise [http] max_inflight_bytes",
                budget.max(),
                budget.used()
            ),
        )
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(max: usize) -> ApiError {
    ApiError {
        close: true,
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than max_body_bytes ({max} bytes): send smaller batches \
                 or raise [http] max_body_bytes"
            ),
        )
    }
}

/// `POST /v1/flush`
async fn flush(State(state): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(handle) = &state.flush else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "flush is not available in this process",
        ));
    };
    handle.flush().await.map(Json).map_err(|e| {
        tracing::warn!(error = %e, "flush requested over HTTP failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)
    })
}

/// `GET /healthz`: `200 ok`, or `503` with every problem and what to do.
async fn healthz(State(state): Shared) -> Response {
    let status = state.health.check();
    state.metrics.set_health(&status);
    if status.is_healthy() {
        return "ok".into_response();
    }
    let reasons: Vec<String> = status.problems.iter().map(|p| p.reason.clone()).collect();
    let problems: Vec<&str> = status.problems.iter().map(|p| p.kind.as_str()).collect();
    let body = serde_json::json!({
        "error": format!("unhealthy: {}", reasons.join("; ")),
        "problems": problems,
        "reasons": reasons,
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// `GET /metrics`: refreshes the WAL, health and in-flight gauges, then renders
/// everything, in OpenMetrics when the `Accept` header asks for it (as
/// Prometheus does), else in the Prometheus text format.
async fn metrics(State(state): Shared, headers: HeaderMap) -> Response {
    let stats = state.wal.stats();
    state.metrics.set_wal(stats.disk_bytes, stats.segments);
    state.metrics.set_health(&state.health.check());
    state
        .metrics
        .set_http_inflight_bytes(state.inflight.used() as u64);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = MetricsFormat::from_accept(accept);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        state.metrics.render_as(format),
    )
        .into_response()
}

fn current_status(state: &HttpState) -> status::Status {
    let mut inputs = status::Inputs::gather(
        &state.wal,
        &state.uploads,
        state.nats_stations.list(),
        &state.metrics,
        state.owner.clone(),
    );
    inputs.cluster = state
        .cluster
        .as_ref()
        .map(|c| c.read().map(|s| s.clone()).unwrap_or_default());
    status::build(&inputs)
}

/// `GET /v1/status`
async fn status_json(State(state): Shared) -> Json<status::Status> {
    Json(current_status(&state))
}

/// `GET /`: the status page.
async fn status_page(State(state): Shared) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // The URL may carry the token: keep it out of other sites' logs.
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        status::render_html(&current_status(&state)),
    )
        .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {} {}: use POST /v1/stations/{{station}}/messages, POST /v1/flush, \
             GET /healthz, GET /metrics, GET /v1/status or GET /",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A known path asked with the wrong method: 405 naming the method to use
/// (axum adds the `Allow` header).
async fn method_not_allowed(request: Request) -> ApiError {
    let path = request.uri().path();
    // The health, metrics and status endpoints are read with GET; the others take POST.
    let allowed = match path {
        "/healthz" | "/metrics" | "/v1/status" | "/" => "GET",
        _ => "POST",
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {path}: use {allowed} {path}",
            request.method()
        ),
    )
}

/// Counts every answer by status code.
async fn count_status(State(state): Shared, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.metrics.inc_http(response.status().as_u16());
    response
}

/// Lets a request through only with the configured bearer token (when one is set).
async fn require_token(
    State(state): Shared,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.token {
        check_bearer(request.headers(), token)?;
    }
    Ok(next.run(request).await)
}

/// Like [`require_token`], but a `token` query parameter also does (for a
/// browser opening the status page).
async fn require_token_or_query(
    State(state): Shared,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.token {
        let query = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(percent_decode)
        });
        match query {
            Some(presented) if request.headers().get(header::AUTHORIZATION).is_none() => {
                if !same_token(&presented, token) {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "wrong token: pass the [http] token as ?token=<token> or \
                         `Authorization: Bearer <token>`",
                    ));
                }
            }
            _ => check_bearer(request.headers(), token).map_err(|mut e| {
                e.body.error = format!("{} (or add ?token=<token> to the URL)", e.body.error);
                e
            })?,
        }
    }
    Ok(next.run(request).await)
}

/// Decodes `%XX` escapes and `+` of a query value (invalid escapes stay as they are).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares digests, so the time is independent of the token's content and length.
fn same_token(presented: &str, token: &Secret) -> bool {
    let want = Sha256::digest(token.expose().as_bytes());
    let got = Sha256::digest(presented.as_bytes());
    bool::from(want.ct_eq(&got))
}

fn check_bearer(headers: &HeaderMap, token: &Secret) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send the [http] token as `Authorization: Bearer <token>`",
        ));
    };
    if same_token(presented, token) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong bearer token: send the [http] token as `Authorization: Bearer <token>`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        let token = Secret::new("s3cret");
        assert!(check_bearer(&headers(Some("Bearer s3cret")), &token).is_ok());
        assert!(check_bearer(&headers(Some("bearer s3cret")), &token).is_ok());
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
            Some("s3cret"),
            Some("Bearer "),
        ] {
            let e = check_bearer(&headers(bad), &token).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad:?}");
            assert!(!e.body.error.contains("s3cret"), "the token never leaks");
        }
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Bb+c%zz%4"), "a+b c%zz%4");
        assert_eq!(percent_decode("s3cret"), "s3cret");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn wal_errors_map_to_statuses() {
        let full: ApiError = WalError::Full { used: 2, max: 1 }.into();
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(full.retry_after);
        let response = full.into_response();
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).unwrap(),
            &RETRY_AFTER_SECS.to_string()
        );
        let too_big: ApiError = WalError::BatchTooLarge { bytes: 5, max: 4 }.into();
        assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            too_big.body.error.contains("split it"),
            "{}",
            too_big.body.error
        );
        let poisoned: ApiError = WalError::Poisoned.into();
        assert_eq!(poisoned.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!poisoned.retry_after);
    }

    #[test]
    fn line_errors_carry_line_and_field() {
        let e: ApiError = ndjson::LineError {
            line: 7,
            field: "seq".into(),
            reason: "bad".into(),
        }
        .into();
        let json = serde_json::to_value(&e.body).unwrap();
        assert_eq!(json["line"], 7);
        assert_eq!(json["field"], "seq");
        assert!(json["error"].as_str().unwrap().contains("line 7"));
    }

    #[test]
    fn replies_report_this_stations_range() {
        let s = StationName::new("s").unwrap();
        let appended = Appended {
            accepted: 3,
            accepted_bytes: 30,
            duplicates: 1,
            ranges: vec![(s.clone(), 4, 6)],
        };
        let r = reply(&s, &appended);
        assert_eq!(
            (r.accepted, r.duplicates, r.first_seq, r.last_seq),
            (3, 1, Some(4), Some(6))
        );
        let none = reply(&s, &Appended::default());
        assert_eq!((none.first_seq, none.last_seq), (None, None));
    }
}
