//! The HTTP side: the accept loop (one hyper connection task per socket, so a fault can drop a
//! connection), the axum router, and the request pipeline
//! latency -> authentication -> route -> throttle -> fault -> state change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::auth::{Auth, IssuedToken, TokenRequestContext};
use crate::config::{FaultConfig, FaultKind};
use crate::directory::Directory;
use crate::methods::{rfc3339, REPORT_DEFAULT_PAGE, REPORT_MAX_PAGE};
use crate::model::SimStats;
use crate::response::{too_many_requests, unauthorized, GraphError, SimResponse};
use crate::routes::{self, ApiVersion, DeniedShape, Route};
use crate::throttle::{
    format_fractional_retry_after, format_limit_percentage, format_retry_after, Admitted, Refused,
    Throttle,
};

/// Most requests Graph accepts in one `$batch`.
pub const MAX_BATCH_REQUESTS: usize = 20;
/// Page size of `GET /users` when `$top` is absent, and the largest `$top` accepted.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;

/// `$top` (`default` without it, refused outside 1..=`max`) and `$skiptoken` (the rows to
/// skip) of a paged listing, and every query parameter.
fn page_params(
    query: Option<&str>,
    default: usize,
    max: usize,
) -> Result<(usize, usize, HashMap<String, String>), GraphError> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let top = match params.get("$top") {
        None => default,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid page size '{t}': $top must be between 1 and {max}."
                ))
            })?,
    };
    let skip = match params.get("$skiptoken") {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "Directory_InvalidSkipToken",
                "The specified page token value has expired or is invalid.",
            )
        })?,
    };
    Ok((top, skip, params))
}

/// `body` with `@odata.nextLink` = `next` when there is a next page.
fn with_next_link(mut body: Value, next: Option<String>) -> Value {
    if let (Some(next), Some(obj)) = (next, body.as_object_mut()) {
        obj.insert("@odata.nextLink".into(), json!(next));
    }
    body
}

/// Shared simulator state.
pub(crate) struct Inner {
    pub(crate) base_url: String,
    pub(crate) directory: Mutex<Directory>,
    pub(crate) throttle: Mutex<Throttle>,
    pub(crate) stats: Mutex<SimStats>,
    pub(crate) auth: Auth,
    pub(crate) faults: RwLock<FaultConfig>,
    pub(crate) latency_us: AtomicU64,
    pub(crate) timeout_hold_ms: AtomicU64,
    pub(crate) require_content_length: std::sync::atomic::AtomicBool,
    pub(crate) limit_percentage_header: std::sync::atomic::AtomicBool,
    /// The tenant has Entra ID P1/P2 (the registration report needs it).
    pub(crate) premium_license: std::sync::atomic::AtomicBool,
}

/// Lets a handler close the connection its request arrived on.
#[derive(Clone)]
pub(crate) struct ConnHandle(Arc<Notify>);

/// How a request ends.
enum Outcome {
    Respond(SimResponse),
    /// Close the connection without answering.
    Drop,
    /// Hold the request, then answer 504.
    Timeout,
}

/// Whether `process` draws a fault itself or uses one drawn beforehand (`$batch`).
enum FaultChoice {
    Roll,
    Preset(Option<FaultKind>),
}

fn ok(body: Value) -> SimResponse {
    SimResponse::json(StatusCode::OK, body)
}

fn created(body: Value) -> SimResponse {
    SimResponse::json(StatusCode::CREATED, body)
}

fn no_content(_: ()) -> SimResponse {
    SimResponse::no_content()
}

fn random_retry_after() -> String {
    format_fractional_retry_after(Duration::from_millis(rand::random_range(50..=500)))
}

/// A 429 from the budgets, with Graph's throttling headers (see the crate docs, "Throttling").
fn throttled(refused: Refused, grant: &IssuedToken) -> SimResponse {
    too_many_requests(format_retry_after(refused.wait))
        .with_header(
            "x-ms-throttle-scope",
            format!(
                "Tenant_Application/{}/{}/{}",
                refused.limit.scope_kind(),
                grant.client_id,
                grant.tenant
            ),
        )
        .with_header(
            "x-ms-throttle-information",
            refused.limit.information().to_string(),
        )
}

impl Inner {
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    pub(crate) fn timeout_hold(&self) -> Duration {
        Duration::from_millis(self.timeout_hold_ms.load(Ordering::Relaxed))
    }

    async fn sleep_latency(&self) {
        let d = self.latency();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    fn count_request(&self, method: &Method) {
        let mut s = self.stats.lock();
        s.requests += 1;
        match *method {
            Method::GET => s.gets += 1,
            Method::POST => s.posts += 1,
            Method::PATCH => s.patches += 1,
            Method::DELETE => s.deletes += 1,
            _ => {}
        }
    }

    /// Checks `Authorization: Bearer <issued token>`; returns what the token grants.
    fn authorize(&self, headers: &HeaderMap) -> Result<IssuedToken, SimResponse> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or("");
        let refusal = if token.is_empty() {
            "Access token is empty."
        } else {
            match self.auth.token_info(token) {
                Some(grant) => return Ok(grant),
                None => "Lifetime validation failed, the token is expired.",
            }
        };
        self.stats.lock().unauthorized += 1;
        Err(unauthorized(refusal))
    }

    fn roll_fault(&self) -> Option<FaultKind> {
        let faults = self.faults.read();
        if !faults.is_active() || !rand::random_bool(faults.rate.clamp(0.0, 1.0)) {
            return None;
        }
        faults
            .kinds
            .get(rand::random_range(0..faults.kinds.len()))
            .copied()
    }

    /// Runs one authenticated Graph request through routing, throttling, faults and the
    /// directory.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        grant: &IssuedToken,
        version: ApiVersion,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: Result<Option<Value>, GraphError>,
        fault: FaultChoice,
        eventual: bool,
    ) -> Outcome {
        let route = match routes::parse(version, method, path) {
            Ok(r) => r,
            Err(e) => return Outcome::Respond(e.into()),
        };
        if let Err(denied) = permitted(grant, &route) {
            self.stats.lock().forbidden += 1;
            return Outcome::Respond(denied.into());
        }
        if route.is_report() {
            return self.process_report(version, &route, query, body, fault, method);
        }
        if route == Route::CountUsers && !eventual {
            // "If the ConsistencyLevel=eventual header is not specified, the request returns an
            // error when the $count URL segment is used": 400 `Request_BadRequest` "$count is not
            // currently supported." (https://learn.microsoft.com/en-us/graph/aad-advanced-queries,
            // "Error handling for advanced queries on directory objects").
            return Outcome::Respond(
                GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "$count is not currently supported.",
                )
                .into(),
            );
        }
        let is_write = route.is_write();
        let admitted = self.throttle.lock().admit(Instant::now(), is_write);
        {
            let mut s = self.stats.lock();
            match admitted {
                Ok(a) => {
                    s.ru_used += u64::from(a.cost_ru);
                    s.writes += u64::from(is_write);
                }
                Err(_) => s.throttled += 1,
            }
        }
        let admitted = match admitted {
            Ok(a) => a,
            Err(refused) => return Outcome::Respond(throttled(refused, grant)),
        };
        match self.answer(version, &route, query, body, fault, method) {
            Outcome::Respond(r) => Outcome::Respond(self.usage_headers(r, admitted)),
            other => other,
        }
    }

    /// A request to the registration report: Entra ID P1/P2 first, then the reports' own budget
    /// (not the resource units), then faults and the page. A refusal answers 429
    /// `TooManyRequests` with `Retry-After` in whole seconds, as Graph's throttling does
    /// ("Retry-After ... the number of seconds", https://learn.microsoft.com/en-us/graph/throttling);
    /// no source shows the reports service sending the identity-and-access `x-ms-throttle-*`
    /// headers, so none are sent, and an admitted request carries no `x-ms-resource-unit`.
    fn process_report(
        &self,
        version: ApiVersion,
        route: &Route,
        query: Option<&str>,
        body: Result<Option<Value>, GraphError>,
        fault: FaultChoice,
        method: &Method,
    ) -> Outcome {
        self.stats.lock().report_requests += 1;
        if !self.premium_license.load(Ordering::Relaxed) {
            // See `SimConfig::premium_license`.
            self.stats.lock().forbidden += 1;
            return Outcome::Respond(
                GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                )
                .into(),
            );
        }
        let admitted = self.throttle.lock().admit_report(Instant::now());
        if let Err(wait) = admitted {
            let mut s = self.stats.lock();
            s.throttled += 1;
            s.report_throttled += 1;
            return Outcome::Respond(too_many_requests(format_retry_after(wait)));
        }
        self.answer(version, route, query, body, fault, method)
    }

    /// `x-ms-resource-unit` and, above 0.8 of a limit, `x-ms-throttle-limit-percentage` on an
    /// admitted request's answer (see the crate docs, "Throttling").
    fn usage_headers(&self, response: SimResponse, admitted: Admitted) -> SimResponse {
        let response = response.with_header("x-ms-resource-unit", admitted.cost_ru.to_string());
        match admitted.limit_percentage {
            Some(share) if self.limit_percentage_header.load(Ordering::Relaxed) => response
                .with_header(
                    "x-ms-throttle-limit-percentage",
                    format_limit_percentage(share),
                ),
            _ => response,
        }
    }

    /// An admitted request: faults, then the directory.
    fn answer(
        &self,
        version: ApiVersion,
        route: &Route,
        query: Option<&str>,
        body: Result<Option<Value>, GraphError>,
        fault: FaultChoice,
        method: &Method,
    ) -> Outcome {
        let fault = match fault {
            FaultChoice::Roll => self.roll_fault(),
            FaultChoice::Preset(f) => f,
        };
        if let Some(kind) = fault {
            self.stats.lock().faults_injected += 1;
            tracing::debug!(fault = %kind, %method, "injecting fault");
            match kind {
                FaultKind::Throttle429 => {
                    return Outcome::Respond(too_many_requests(random_retry_after()));
                }
                FaultKind::Status500 => {
                    return Outcome::Respond(
                        GraphError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "generalException",
                            "General exception while processing.",
                        )
                        .into(),
                    );
                }
                FaultKind::Status503 => {
                    let ra = rand::random_bool(0.5).then(random_retry_after);
                    return Outcome::Respond(
                        SimResponse::from(GraphError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "serviceNotAvailable",
                            "The service is temporarily unavailable. Please retry later.",
                        ))
                        .with_retry_after(ra),
                    );
                }
                FaultKind::Timeout => return Outcome::Timeout,
                FaultKind::Drop => return Outcome::Drop,
                FaultKind::AfterCommit => {}
            }
        }
        let body = match body {
            Ok(b) => b,
            Err(e) => return Outcome::Respond(e.into()),
        };
        let response = self.execute(version, route, query, body.as_ref());
        if fault == Some(FaultKind::AfterCommit) {
            return Outcome::Respond(
                GraphError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "generalException",
                    "General exception while processing.",
                )
                .into(),
            );
        }
        Outcome::Respond(response)
    }

    fn execute(
        &self,
        version: ApiVersion,
        route: &Route,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> SimResponse {
        let mut d = self.directory.lock();
        let result = match route {
            Route::ListUsers => self.list_users(&d, version, query),
            Route::GroupMembers { group, transitive } => {
                self.group_members(&d, version, group, *transitive, query)
            }
            Route::GetUser { user } => d.get_user(user).map(ok),
            // `893` as text/plain (https://learn.microsoft.com/en-us/graph/api/user-list,
            // "Get only a count of users").
            Route::CountUsers => Ok(SimResponse::plain(
                StatusCode::OK,
                d.visible_count().to_string(),
            )),
            Route::ListMethods { user } => d.list_methods(user).map(ok),
            Route::RegistrationDetails => self.registration_details(&d, version, query),
            Route::ListPhones { user } => d.list_phones(user).map(ok),
            Route::CreatePhone { user } => d.create_phone(user, body).map(created),
            Route::GetPhone { user, method } => d.get_phone(user, method).map(ok),
            Route::UpdatePhone { user, method } => {
                d.update_phone(user, method, body).map(no_content)
            }
            Route::DeletePhone { user, method } => d.delete_phone(user, method).map(no_content),
            Route::SmsSignIn {
                user,
                method,
                enable,
            } => d.set_sms_sign_in(user, method, *enable).map(no_content),
            Route::ListEmails { user } => d.list_emails(user).map(ok),
            Route::CreateEmail { user } => d.create_email(user, body).map(created),
            Route::GetEmail { user, method } => d.get_email(user, method).map(ok),
            Route::UpdateEmail { user, method } => {
                d.update_email(user, method, body).map(no_content)
            }
            Route::DeleteEmail { user, method } => d.delete_email(user, method).map(no_content),
            Route::GetPreferences { user } => d.get_preferences(user).map(ok),
            Route::UpdatePreferences { user } => d.update_preferences(user, body).map(no_content),
            Route::ListTaps { user } => d.list_taps(user).map(ok),
            Route::CreateTap { user } => d.create_tap(user, body).map(created),
            Route::GetTap { user, method } => d.get_tap(user, method).map(ok),
            Route::DeleteTap { user, method } => d.delete_tap(user, method).map(no_content),
            Route::GetTapPolicy => Ok(ok(self.tap_policy(&d, version))),
        };
        result.unwrap_or_else(SimResponse::from)
    }

    /// The TAP policy with the `@odata.context` of the get page's example
    /// (`.../$metadata#authenticationMethodConfigurations/$entity`).
    fn tap_policy(&self, d: &Directory, version: ApiVersion) -> Value {
        let mut body = d.tap_policy_json();
        if let Some(obj) = body.as_object_mut() {
            obj.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/{}/$metadata#authenticationMethodConfigurations/$entity",
                    self.base_url,
                    version.as_str()
                )),
            );
        }
        body
    }

    /// `GET /users?$select=id,userPrincipalName&$top=N[&$skiptoken=K]`, paged with
    /// `@odata.nextLink`.
    fn list_users(
        &self,
        d: &Directory,
        version: ApiVersion,
        query: Option<&str>,
    ) -> Result<SimResponse, GraphError> {
        let (top, skip, params) = page_params(query, DEFAULT_PAGE, MAX_PAGE)?;
        let (page, more) = d.list_users(skip, top);
        let body = json!({
            "@odata.context": format!("{}/{}/$metadata#users(id,userPrincipalName)", self.base_url, version.as_str()),
            "value": page,
        });
        let next = more.then(|| {
            let select: String = params
                .get("$select")
                .map(|s| {
                    s.chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == ',')
                        .collect()
                })
                .unwrap_or_else(|| "id,userPrincipalName".to_string());
            format!(
                "{}/{}/users?$select={select}&$top={top}&$skiptoken={}",
                self.base_url,
                version.as_str(),
                skip + top
            )
        });
        Ok(ok(with_next_link(body, next)))
    }

    /// `GET /reports/authenticationMethods/userRegistrationDetails?$top=N[&$skiptoken=K]`, paged
    /// with `@odata.nextLink` (an absolute URL with a `$skiptoken`, as clients follow it:
    /// `.../userRegistrationDetails?$skiptoken=...` in microsoft/zerotrustassessment#387), pages
    /// of [`REPORT_DEFAULT_PAGE`] without `$top` and at most [`REPORT_MAX_PAGE`]; a `$top` out of
    /// range is refused as `/users` refuses it (the stricter reading: Graph's page of this API
    /// says nothing of page sizes).
    fn registration_details(
        &self,
        d: &Directory,
        version: ApiVersion,
        query: Option<&str>,
    ) -> Result<SimResponse, GraphError> {
        let (top, skip, _) = page_params(query, REPORT_DEFAULT_PAGE, REPORT_MAX_PAGE)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (page, more) =
            d.registration_page(skip, top, version == ApiVersion::Beta, &rfc3339(now));
        let body = json!({
            "@odata.context": format!(
                "{}/{}/$metadata#reports/authenticationMethods/userRegistrationDetails",
                self.base_url,
                version.as_str()
            ),
            "value": page,
        });
        let next = more.then(|| {
            format!(
                "{}/{}/reports/authenticationMethods/userRegistrationDetails?$top={top}&$skiptoken={}",
                self.base_url,
                version.as_str(),
                skip + top
            )
        });
        Ok(ok(with_next_link(body, next)))
    }

    /// `GET /groups/{id}/[transitive]members`, paged like `/users` (`$top`, `$skiptoken`).
    fn group_members(
        &self,
        d: &Directory,
        version: ApiVersion,
        group: &str,
        transitive: bool,
        query: Option<&str>,
    ) -> Result<SimResponse, GraphError> {
        let params: HashMap<String, String> =
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let top = params
            .get("$top")
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .unwrap_or(DEFAULT_PAGE);
        let skip = params
            .get("$skiptoken")
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(0);
        let all = d.group_members(group, transitive)?;
        let more = skip.saturating_add(top) < all.len();
        let page: Vec<Value> = all.into_iter().skip(skip).take(top).collect();
        let mut body = json!({ "value": page });
        if more {
            let rel = if transitive {
                "transitiveMembers"
            } else {
                "members"
            };
            let next = format!(
                "{}/{}/groups/{group}/{rel}/microsoft.graph.user?$select=id,userPrincipalName&$top={top}&$skiptoken={}",
                self.base_url,
                version.as_str(),
                skip + top
            );
            if let Some(obj) = body.as_object_mut() {
                obj.insert("@odata.nextLink".into(), json!(next));
            }
        }
        Ok(ok(body))
    }

    async fn finish(&self, outcome: Outcome, conn: Option<ConnHandle>) -> Response {
        match outcome {
            Outcome::Respond(r) => r.into_response(),
            Outcome::Drop => {
                if let Some(ConnHandle(signal)) = conn {
                    signal.notify_one();
                    // The connection task drops this future with the socket; the bounded sleep
                    // only matters if it somehow does not.
                    tokio::time::sleep(self.timeout_hold()).await;
                }
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            Outcome::Timeout => {
                tokio::time::sleep(self.timeout_hold()).await;
                SimResponse::from(GraphError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "The request timed out.",
                ))
                .into_response()
            }
        }
    }
}

/// Graph checks the token's `roles` (application permissions) against the operation's
/// permissions table and answers 403 when none is granted. The wording differs by path:
/// authentication-method endpoints answer `accessDenied` "Request Authorization failed", the
/// directory's `/users` `Authorization_RequestDenied` "Insufficient privileges to complete the
/// operation." (see the crate docs, "Permissions").
fn permitted(grant: &IssuedToken, route: &Route) -> Result<(), GraphError> {
    let (needed, shape) = route.permissions();
    if grant
        .roles
        .iter()
        .any(|r| needed.iter().any(|n| n.eq_ignore_ascii_case(r)))
    {
        return Ok(());
    }
    Err(match shape {
        DeniedShape::AuthenticationMethods => GraphError::new(
            StatusCode::FORBIDDEN,
            "accessDenied",
            "Request Authorization failed",
        ),
        DeniedShape::Directory => GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
        // As Graph answered an app without AuditLog.Read.All
        // (microsoftgraph/microsoft-graph-docs-contrib#1852).
        DeniedShape::Reports => GraphError::new(
            StatusCode::FORBIDDEN,
            "Authentication_MSGraphPermissionMissing",
            format!(
                "Calling principal does not have required MSGraph permissions {}",
                needed.first().copied().unwrap_or("")
            ),
        ),
    })
}

/// Graph's HTTP/1.1 front end refuses a request that may carry a body but has neither
/// `Content-Length` nor `Transfer-Encoding` with 411 Length Required, before Graph itself sees it
/// (so it is not charged, not authenticated and its body is HTML, not Graph's JSON): a bodyless
/// `POST .../enableSmsSignIn` must still send `Content-Length: 0` (see the crate docs, "411").
fn length_required(method: &Method, headers: &HeaderMap) -> Option<Response> {
    let needs_length = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if !needs_length
        || headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return None;
    }
    Some(
        (
            StatusCode::LENGTH_REQUIRED,
            [(header::CONTENT_TYPE, "text/html; charset=us-ascii")],
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Length Required</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Length Required</h2>\r\n<hr><p>HTTP Error 411. The request must be chunked or have a content length.</p>\r\n</BODY></HTML>\r\n",
        )
            .into_response(),
    )
}

fn parse_body(bytes: &Bytes) -> Result<Option<Value>, GraphError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| GraphError::bad_request(format!("Invalid JSON in the request body: {e}.")))
}

fn not_found_path(path: &str) -> Response {
    SimResponse::from(GraphError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("No resource at '{path}'."),
    ))
    .into_response()
}

/// Every Graph request outside `$batch`.
async fn graph_handler(
    State(inner): State<Arc<Inner>>,
    conn: Option<Extension<ConnHandle>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let trimmed = uri.path().trim_start_matches('/');
    let (version_segment, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let Some(version) = ApiVersion::parse(version_segment) else {
        return not_found_path(uri.path());
    };
    inner.sleep_latency().await;
    if inner.require_content_length.load(Ordering::Relaxed) {
        if let Some(refused) = length_required(&method, &headers) {
            inner.stats.lock().length_required += 1;
            return refused;
        }
    }
    inner.count_request(&method);
    let grant = match inner.authorize(&headers) {
        Ok(g) => g,
        Err(resp) => return resp.into_response(),
    };
    // `ConsistencyLevel: eventual` (advanced queries: `$count`).
    let eventual = headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));
    let outcome = inner.process(
        &grant,
        version,
        &method,
        rest,
        uri.query(),
        parse_body(&body),
        FaultChoice::Roll,
        eventual,
    );
    let response = inner.finish(outcome, conn.map(|Extension(c)| c)).await;
    tracing::debug!(%method, path = uri.path(), status = response.status().as_u16(), "graph request");
    response
}

/// `POST /{version}/$batch`: at most 20 requests, run in order, each authenticated by the
/// envelope, throttled and faulted on its own. A drawn `Timeout` or `Drop` fault hits the whole
/// batch before any request in it is applied.
async fn batch_handler(
    State(inner): State<Arc<Inner>>,
    conn: Option<Extension<ConnHandle>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let version = if uri.path().starts_with("/beta/") {
        ApiVersion::Beta
    } else {
        ApiVersion::V1
    };
    inner.sleep_latency().await;
    inner.stats.lock().batches += 1;
    let grant = match inner.authorize(&headers) {
        Ok(g) => g,
        Err(resp) => return resp.into_response(),
    };
    let requests = match parse_body(&body) {
        Ok(Some(Value::Object(mut o))) => match o.remove("requests") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        Ok(_) => Vec::new(),
        Err(e) => return SimResponse::from(e).into_response(),
    };
    if requests.is_empty() {
        return SimResponse::from(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid batch payload: a non-empty 'requests' array is required.",
        ))
        .into_response();
    }
    if requests.len() > MAX_BATCH_REQUESTS {
        return SimResponse::from(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "The batch holds {} requests; the limit is {MAX_BATCH_REQUESTS}.",
                requests.len()
            ),
        ))
        .into_response();
    }
    let faults: Vec<Option<FaultKind>> = requests.iter().map(|_| inner.roll_fault()).collect();
    let whole = faults
        .iter()
        .flatten()
        .find(|k| matches!(k, FaultKind::Drop | FaultKind::Timeout))
        .copied();
    if let Some(kind) = whole {
        for r in &requests {
            let m = r.get("method").and_then(Value::as_str).unwrap_or("");
            inner.count_request(&Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET));
        }
        inner.stats.lock().faults_injected += 1;
        let outcome = if kind == FaultKind::Drop {
            Outcome::Drop
        } else {
            Outcome::Timeout
        };
        return inner.finish(outcome, conn.map(|Extension(c)| c)).await;
    }
    let mut responses = Vec::with_capacity(requests.len());
    for (index, (request, fault)) in requests.iter().zip(faults).enumerate() {
        let id = request
            .get("id")
            .cloned()
            .unwrap_or_else(|| json!((index + 1).to_string()));
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .map(|m| m.to_ascii_uppercase())
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let url = request.get("url").and_then(Value::as_str);
        let (Some(method), Some(url)) = (method, url) else {
            responses.push(
                SimResponse::from(GraphError::bad_request(
                    "Each batch request needs 'method' and 'url'.",
                ))
                .to_batch_entry(&id),
            );
            continue;
        };
        inner.count_request(&method);
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        let body = match request.get("body") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(v.clone())),
        };
        let eventual = request
            .get("headers")
            .and_then(Value::as_object)
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("consistencylevel"))
                    .and_then(|(_, v)| v.as_str())
            })
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));
        let outcome = inner.process(
            &grant,
            version,
            &method,
            path.trim_start_matches('/'),
            query,
            body,
            FaultChoice::Preset(fault),
            eventual,
        );
        let entry = match outcome {
            Outcome::Respond(r) => r,
            Outcome::Drop | Outcome::Timeout => SimResponse::from(GraphError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "General exception while processing.",
            )),
        };
        responses.push(entry.to_batch_entry(&id));
    }
    (StatusCode::OK, Json(json!({ "responses": responses }))).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
async fn token_handler(
    State(inner): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.sleep_latency().await;
    inner.stats.lock().token_requests += 1;
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut bases = vec![inner.base_url.clone()];
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        let b = format!("http://{host}");
        if b != inner.base_url {
            bases.push(b);
        }
    }
    let ctx = TokenRequestContext {
        tenant: &tenant,
        audiences: bases
            .iter()
            .map(|b| format!("{b}/{tenant}/oauth2/v2.0/token"))
            .collect(),
        scopes: bases.iter().map(|b| format!("{b}/.default")).collect(),
    };
    match inner.auth.token_request(&ctx, &form) {
        Ok(body) => {
            inner.stats.lock().tokens_issued += 1;
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => {
            inner.stats.lock().token_errors += 1;
            tracing::warn!(tenant = %tenant, error = e.error, code = e.code, "token request refused: {}", e.description);
            (e.status, Json(e.body())).into_response()
        }
    }
}

async fn control_stats(State(inner): State<Arc<Inner>>) -> Response {
    Json(crate::snapshot_stats(&inner)).into_response()
}

async fn control_users(State(inner): State<Arc<Inner>>) -> Response {
    Json(inner.directory.lock().users()).into_response()
}

async fn control_write_log(State(inner): State<Arc<Inner>>) -> Response {
    Json(inner.directory.lock().write_log()).into_response()
}

async fn control_revoke(State(inner): State<Arc<Inner>>) -> Response {
    inner.auth.revoke_tokens();
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token_handler))
        .route("/v1.0/$batch", post(batch_handler))
        .route("/beta/$batch", post(batch_handler))
        .route("/_sim/stats", get(control_stats))
        .route("/_sim/users", get(control_users))
        .route("/_sim/write-log", get(control_write_log))
        .route("/_sim/revoke-tokens", post(control_revoke))
        .fallback(graph_handler)
        .with_state(inner)
}

/// Accepts connections until `shutdown` changes (or its sender is dropped), then aborts the
/// open connections.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    conns.shutdown().await;
}

async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    // Best effort: small responses go out without Nagle delays.
    let _ = stream.set_nodelay(true);
    let drop_signal = Arc::new(Notify::new());
    let handle = ConnHandle(drop_signal.clone());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(handle.clone());
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = drop_signal.notified() => {
            tracing::debug!("closing a connection without a response (injected fault)");
        }
        _ = shutdown.changed() => {}
    }
}
