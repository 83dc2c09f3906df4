//! The Graph HTTP client: token, retries, throttling, error mapping.
//!
//! The endpoints' methods live beside it, one file per Graph resource: `phone_methods`
//! (phoneAuthenticationMethod, SMS sign-in), `email_methods` (emailAuthenticationMethod),
//! `sign_in_preferences` (default method, beta), `users` (users and group members); each
//! describes its calls through [`GraphClient::send`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::GraphSettings;
use crate::graph::credentials::Credentials;
use crate::graph::error::{ConfigFault, GraphError};
use crate::graph::limiter::{AdaptiveLimiter, LimiterConfig};
use crate::graph::permissions::Feature;
use crate::graph::retry::{backoff_delay, describe_reqwest_error, parse_retry_after};
use crate::graph::token::TokenProvider;
use crate::mask::mask_numbers_in_text;

/// Everything but RFC 3986 unreserved characters is percent-encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A user id (UPN or object id) as one URL path segment. `.` / `..` (or empty) cannot be sent:
/// URL parsers resolve them, even encoded.
pub fn encode_user_segment(user: &str) -> Result<String, GraphError> {
    let u = user.trim();
    if u.is_empty() || u.chars().all(|c| c == '.') {
        return Err(GraphError::InvalidUser(
            "empty, '.' or '..' is not a user".into(),
        ));
    }
    Ok(utf8_percent_encode(u, SEGMENT).to_string())
}

/// How long a token's `roles` are believed when they lack a permission: after that a new token
/// is fetched to see whether consent was granted meanwhile.
pub const ROLES_RECHECK: Duration = Duration::from_secs(30);

/// Tuning of [`GraphClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout (connect + answer).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per call when 5xx / timeouts / connection errors happen.
    pub max_attempts: u32,
    /// Attempts per call when Graph throttles (429); separate so the limiter can probe.
    pub max_throttled_attempts: u32,
    /// Base and cap of the exponential backoff (full jitter).
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Longest `Retry-After` honoured; longer values are cut to this.
    pub max_retry_after: Duration,
    pub limiter: LimiterConfig,
    /// How long a token's `roles` are believed when they lack a permission (see
    /// [`GraphClient::check_features`]).
    pub roles_recheck: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 6,
            max_throttled_attempts: 12,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
            limiter: LimiterConfig::default(),
            roles_recheck: ROLES_RECHECK,
        }
    }
}

/// Counters of one client (shared by all tasks using it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientStats {
    /// Graph HTTP requests sent (every attempt; token requests not included).
    pub requests: u64,
    /// 429 answers seen.
    pub throttled: u64,
    /// Attempts that were retries of an earlier one (429, 5xx, network, 401 refresh).
    pub retries: u64,
    /// 5xx answers seen.
    pub server_errors: u64,
    /// Timeouts and connection failures.
    pub network_errors: u64,
    /// Token endpoint requests.
    pub token_requests: u64,
    /// The adaptive concurrency limit now.
    pub concurrency_limit: f64,
    /// The limiter's learned pace (requests per second), once Graph signalled its limit.
    pub pace: Option<f64>,
}

/// Which Graph version a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1,
    Beta,
}

impl Api {
    fn prefix(self) -> &'static str {
        match self {
            Api::V1 => "v1.0",
            Api::Beta => "beta",
        }
    }
}

/// What a call addresses: decides how a 404 reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A user-level collection (`.../phoneMethods`): 404 = user not found.
    User,
    /// One method (`.../phoneMethods/{id}`): 404 `itemNotFound` = method not found.
    Method,
}

pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) api: Api,
    /// Path after the version, already encoded, e.g. `users/a%40b.c/authentication/phoneMethods`.
    pub(crate) path: String,
    pub(crate) body: Option<Value>,
    pub(crate) target: Target,
    /// Request headers beyond the token's (e.g. `ConsistencyLevel: eventual`).
    pub(crate) headers: &'static [(&'static str, &'static str)],
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    server_errors: AtomicU64,
    network_errors: AtomicU64,
}

/// Microsoft Graph for authentication methods. Build once and share (`Arc`): the token cache,
/// the adaptive limiter and the counters are per client.
pub struct GraphClient {
    http: reqwest::Client,
    settings: GraphSettings,
    tokens: TokenProvider,
    limiter: AdaptiveLimiter,
    /// Admission of the identity and access reports (`reports/...`), which Graph throttles on
    /// a budget of their own, far below the resource units ("Five requests per 10 seconds" per
    /// app per tenant, https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-reports-service-limits):
    /// their 429s and `Retry-After` pauses hold report calls only, not the method calls.
    reports_limiter: AdaptiveLimiter,
    counters: Counters,
    opts: ClientOptions,
    /// The tenant's Temporary Access Pass policy, read once per client (a run of the CLI, a cold
    /// start of the worker): `None` inside when the app may not read it.
    pub(crate) tap_policy: tokio::sync::OnceCell<Option<crate::tap::TapPolicy>>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("settings", &self.settings)
            .field("tokens", &self.tokens)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Done(Option<Value>),
    Fail(GraphError),
    Retry {
        why: String,
        delay: Duration,
        throttled: bool,
    },
    Refresh,
}

#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorInner,
}

#[derive(serde::Deserialize, Default)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl GraphClient {
    pub fn new(
        settings: GraphSettings,
        credentials: Credentials,
        opts: ClientOptions,
    ) -> Result<GraphClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(512)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("mfa-preload/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let tokens = TokenProvider::new(http.clone(), Arc::new(credentials), &settings);
        // Report pages are read one after another: one in flight is all they need.
        let reports = LimiterConfig {
            initial: 1,
            min: 1,
            max: 2,
            ..opts.limiter.clone()
        };
        Ok(GraphClient {
            http,
            settings,
            tokens,
            limiter: AdaptiveLimiter::new(opts.limiter.clone()),
            reports_limiter: AdaptiveLimiter::new(reports),
            counters: Counters::default(),
            opts,
            tap_policy: tokio::sync::OnceCell::new(),
        })
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.settings
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    pub fn limiter(&self) -> &AdaptiveLimiter {
        &self.limiter
    }

    pub fn stats(&self) -> ClientStats {
        let c = &self.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            network_errors: c.network_errors.load(Ordering::Relaxed),
            token_requests: self.tokens.token_requests(),
            concurrency_limit: self.limiter.snapshot().limit,
            pace: self.limiter.snapshot().pace,
        }
    }

    /// The application permissions the app's token grants (its `roles` claim); `None` when the
    /// token cannot be read.
    pub async fn granted_roles(&self) -> Result<Option<Vec<String>>, GraphError> {
        Ok(self.tokens.roles().await?.map(|r| r.to_vec()))
    }

    /// Checks, before any user is touched, that the token's `roles` allow every feature in
    /// `features`. A missing one is looked up again in a new token (consent may have been
    /// granted since), at most once per [`ClientOptions::roles_recheck`], before it is reported as a
    /// [`ConfigFault::MissingPermission`]. An unreadable token passes (Graph will say).
    pub async fn check_features(&self, features: &[Feature]) -> Result<(), GraphError> {
        let mut refreshed = false;
        loop {
            let Some(roles) = self.tokens.roles().await? else {
                return Ok(());
            };
            let missing = crate::graph::permissions::missing(features, &roles);
            let Some(first) = missing.first() else {
                return Ok(());
            };
            if !refreshed
                && self
                    .tokens
                    .refresh_if_older_than(self.opts.roles_recheck)
                    .await
            {
                refreshed = true;
                continue;
            }
            let granted = if roles.is_empty() {
                "none".to_string()
            } else {
                roles.join(", ")
            };
            return Err(GraphError::Configuration(ConfigFault::MissingPermission {
                what: first.describe().to_string(),
                grant: first.least_privileged(),
                graph: format!("the token's roles claim grants {granted}"),
            }));
        }
    }

    /// `users/{encoded user}/authentication`.
    pub(crate) fn auth_path(user: &str) -> Result<String, GraphError> {
        Ok(format!(
            "users/{}/authentication",
            encode_user_segment(user)?
        ))
    }

    /// One Graph call (see [`GraphClient::execute`]): the endpoint files (`phone_methods`,
    /// `email_methods`, `sign_in_preferences`, `users`) describe their calls with this.
    pub(crate) async fn send(
        &self,
        method: Method,
        api: Api,
        path: String,
        body: Option<Value>,
        target: Target,
    ) -> Result<Option<Value>, GraphError> {
        self.send_with_headers(method, api, path, body, target, &[])
            .await
    }

    /// [`GraphClient::send`] with extra request headers.
    pub(crate) async fn send_with_headers(
        &self,
        method: Method,
        api: Api,
        path: String,
        body: Option<Value>,
        target: Target,
        headers: &'static [(&'static str, &'static str)],
    ) -> Result<Option<Value>, GraphError> {
        self.execute(Call {
            method,
            api,
            path,
            body,
            target,
            headers,
        })
        .await
    }

    /// Sends `call` with retries; returns the JSON body of a 2xx (None for 204 / empty).
    pub(crate) async fn execute(&self, call: Call) -> Result<Option<Value>, GraphError> {
        let url = format!(
            "{}/{}/{}",
            self.settings.graph_base_url,
            call.api.prefix(),
            call.path
        );
        let mut failures = 0u32;
        let mut throttles = 0u32;
        let mut refreshed = false;
        let mut had_transient = false;
        let mut first = true;
        let limiter = if call.path.starts_with("reports/") {
            &self.reports_limiter
        } else {
            &self.limiter
        };
        loop {
            if !first {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let permit = limiter.acquire().await;
            let token = match self.tokens.token().await {
                Ok(t) => t,
                Err(e) => return Err(e.into()),
            };
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let mut rb = self
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(token.secret());
            for (name, value) in call.headers {
                rb = rb.header(*name, *value);
            }
            match &call.body {
                Some(b) => rb = rb.json(b),
                // Graph's HTTP/1.1 front end answers 411 Length Required to a POST without
                // Content-Length, and reqwest sends none for a request without a body
                // (`enableSmsSignIn`, `disableSmsSignIn`).
                None if call.method != Method::GET && call.method != Method::DELETE => {
                    rb = rb.header(reqwest::header::CONTENT_LENGTH, "0");
                }
                None => {}
            }
            let attempt = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()))
                        .map(|d| d.min(self.opts.max_retry_after));
                    let usage = limit_percentage(resp.headers());
                    if status.is_success() {
                        match read_success(resp, status).await {
                            Ok(v) => {
                                permit.answered(usage);
                                Attempt::Done(v)
                            }
                            Err(e) => {
                                drop(permit);
                                self.counters.network_errors.fetch_add(1, Ordering::Relaxed);
                                Attempt::Retry {
                                    why: format!("network: {}", describe_reqwest_error(&e)),
                                    delay: Duration::ZERO,
                                    throttled: false,
                                }
                            }
                        }
                    } else if status == StatusCode::TOO_MANY_REQUESTS {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                        permit.throttled(retry_after);
                        Attempt::Retry {
                            why: "HTTP 429 Too Many Requests".into(),
                            // The limiter's pause already holds every task for Retry-After.
                            delay: if retry_after.is_some() {
                                Duration::ZERO
                            } else {
                                backoff_delay(
                                    throttles + 1,
                                    self.opts.backoff_base,
                                    self.opts.backoff_cap,
                                )
                            },
                            throttled: true,
                        }
                    } else if status == StatusCode::UNAUTHORIZED && !refreshed {
                        drop(permit);
                        self.tokens.invalidate(&token).await;
                        refreshed = true;
                        Attempt::Refresh
                    } else if matches!(status.as_u16(), 500 | 502 | 503 | 504) {
                        drop(permit);
                        self.counters.server_errors.fetch_add(1, Ordering::Relaxed);
                        Attempt::Retry {
                            why: format!("HTTP {}", status.as_u16()),
                            delay: retry_after.unwrap_or(Duration::ZERO),
                            throttled: false,
                        }
                    } else {
                        // Answered and charged like a success: it counts for the pace.
                        permit.answered(usage);
                        let body: ErrorBody = resp
                            .bytes()
                            .await
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or_default();
                        let e = classify(
                            status.as_u16(),
                            &body.error.code,
                            &body.error.message,
                            &call,
                            had_transient,
                        );
                        if e.configuration().is_some() {
                            // A permission granted meanwhile is only in a new token.
                            self.tokens.invalidate(&token).await;
                        }
                        Attempt::Fail(e)
                    }
                }
                Err(e) => {
                    drop(permit);
                    self.counters.network_errors.fetch_add(1, Ordering::Relaxed);
                    Attempt::Retry {
                        why: format!("network: {}", describe_reqwest_error(&e)),
                        delay: Duration::ZERO,
                        throttled: false,
                    }
                }
            };
            match attempt {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Refresh => continue,
                Attempt::Retry {
                    why,
                    delay,
                    throttled,
                } => {
                    had_transient = true;
                    let (count, max) = if throttled {
                        throttles += 1;
                        (throttles, self.opts.max_throttled_attempts)
                    } else {
                        failures += 1;
                        (failures, self.opts.max_attempts)
                    };
                    if count >= max {
                        return Err(GraphError::RetriesExhausted {
                            attempts: failures + throttles,
                            last: why,
                        });
                    }
                    let delay = if delay.is_zero() && !throttled {
                        backoff_delay(failures, self.opts.backoff_base, self.opts.backoff_cap)
                    } else {
                        delay
                    };
                    tracing::debug!(
                        method = %call.method,
                        attempt = failures + throttles,
                        why = %why,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "retrying Graph call"
                    );
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }
}

/// `x-ms-throttle-limit-percentage`: the share of a Graph limit in use, sent "only when the
/// application consumed more than 0.8 of its limit", from 0.8 to 1.8
/// (<https://learn.microsoft.com/en-us/graph/throttling-limits#regular-responses-requests>).
/// Field reports say it may never come (microsoftgraph/microsoft-graph-docs#15823): the limiter
/// uses it when present and relies on 429s otherwise.
fn limit_percentage(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    headers
        .get("x-ms-throttle-limit-percentage")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && (0.0..=10.0).contains(p))
}

async fn read_success(
    resp: reqwest::Response,
    status: StatusCode,
) -> Result<Option<Value>, reqwest::Error> {
    let bytes = resp.bytes().await?;
    if status == StatusCode::NO_CONTENT || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // A 2xx with a body that is not JSON is treated as empty; callers that need fields report it.
    Ok(serde_json::from_slice(&bytes).ok())
}

/// The feature (and so the permission) a call belongs to.
fn feature_of(call: &Call) -> Feature {
    let read = call.method == Method::GET;
    let p = call.path.as_str();
    if p.starts_with("reports/") {
        Feature::RegistrationReport
    } else if p.contains("/authentication/methods") {
        Feature::AllMethodsRead
    } else if p.contains("/temporaryAccessPassMethods") {
        if read {
            Feature::TapRead
        } else {
            Feature::Tap
        }
    } else if p.starts_with("policies/") {
        Feature::TapPolicyRead
    } else if p.contains("/phoneMethods") {
        if read {
            Feature::PhoneMethodsRead
        } else {
            Feature::PhoneMethods
        }
    } else if p.contains("/emailMethods") {
        if read {
            Feature::EmailMethodsRead
        } else {
            Feature::EmailMethods
        }
    } else if p.starts_with("groups/") {
        Feature::GroupMembers
    } else if p.contains("/signInPreferences") {
        if read {
            Feature::DefaultMethodRead
        } else {
            Feature::DefaultMethod
        }
    } else {
        Feature::ListUsers
    }
}

/// Maps a non-retryable answer onto a [`GraphError`].
fn classify(status: u16, code: &str, message: &str, call: &Call, after_retry: bool) -> GraphError {
    let masked = mask_numbers_in_text(message);
    let lower = message.to_ascii_lowercase();
    let code_s = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code.to_string()
    };
    if code.eq_ignore_ascii_case("phoneNumberNotUnique") || lower.contains("phonenumbernotunique") {
        return GraphError::SmsSigninNumberNotUnique { message: masked };
    }
    // A missing permission or consent: `accessDenied` "Request Authorization failed" on
    // authentication-method paths, `Authorization_RequestDenied` on directory paths; either way
    // the same for every user.
    // The registration report in a tenant without Entra ID P1/P2: "Neither tenant is B2C or
    // tenant doesn't have premium license"
    // (https://learn.microsoft.com/en-us/graph/known-issues, "License check errors for Azure AD
    // activity reports"), whatever the app is granted.
    if status == 403 && (code.contains("NonPremiumTenant") || lower.contains("premium license")) {
        return GraphError::Configuration(ConfigFault::NotLicensed {
            what: feature_of(call).describe().to_string(),
            graph: format!("403 {code_s}: {masked}"),
        });
    }
    if status == 403 {
        let feature = feature_of(call);
        return GraphError::Configuration(ConfigFault::MissingPermission {
            what: feature.describe().to_string(),
            grant: feature.least_privileged(),
            graph: format!("403 {code_s}: {masked}"),
        });
    }
    if status == 404 {
        return if call.target == Target::Method
            && (code.eq_ignore_ascii_case("itemNotFound") || code.is_empty())
        {
            GraphError::MethodNotFound {
                code: code_s,
                message: masked,
                after_retry,
            }
        } else {
            GraphError::UserNotFound { message: masked }
        };
    }
    // "Converged UserCredentialPolicy does not allow creating or updating this authentication
    // method. AuthMethodType [TemporaryAccessPass]." for a user outside the policy
    // (MicrosoftDocs/azure-docs#111778).
    if status == 400
        && call.path.contains("/temporaryAccessPassMethods")
        && (lower.contains("usercredentialpolicy") || lower.contains("does not allow"))
    {
        return GraphError::TapNotAllowedByPolicy { message: masked };
    }
    if status == 400 && call.method == Method::DELETE && lower.contains("default") {
        return GraphError::DefaultMethodConflict { message: masked };
    }
    if (status == 400 || status == 409)
        && call.method == Method::POST
        && lower.contains("already exist")
    {
        return GraphError::MethodAlreadyExists {
            code: code_s,
            message: masked,
            after_retry,
        };
    }
    GraphError::Rejected {
        status,
        code: code_s,
        message: masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_percentage_header() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(limit_percentage(&h), None);
        h.insert(
            "x-ms-throttle-limit-percentage",
            reqwest::header::HeaderValue::from_static(" 0.85"),
        );
        assert_eq!(limit_percentage(&h), Some(0.85));
        for bad in ["NaN", "-1", "high", "1e9"] {
            h.insert(
                "x-ms-throttle-limit-percentage",
                reqwest::header::HeaderValue::from_static(bad),
            );
            assert_eq!(limit_percentage(&h), None, "{bad}");
        }
    }

    #[test]
    fn user_segments_are_fully_encoded() {
        assert_eq!(
            encode_user_segment("a.b@contoso.com").unwrap(),
            "a.b%40contoso.com"
        );
        assert_eq!(
            encode_user_segment("o'neil#EXT#@x.com").unwrap(),
            "o%27neil%23EXT%23%40x.com"
        );
        assert_eq!(encode_user_segment("a/b?c d").unwrap(), "a%2Fb%3Fc%20d");
        assert_eq!(encode_user_segment("x~y_z-1").unwrap(), "x~y_z-1");
        for bad in ["", " ", ".", ".."] {
            assert!(matches!(
                encode_user_segment(bad),
                Err(GraphError::InvalidUser(_))
            ));
        }
    }

    fn call(method: Method, target: Target) -> Call {
        Call {
            method,
            api: Api::V1,
            path: String::new(),
            body: None,
            target,
            headers: &[],
        }
    }

    #[test]
    fn classification() {
        let c = classify(
            404,
            "Request_ResourceNotFound",
            "Resource 'x' does not exist",
            &call(Method::GET, Target::User),
            false,
        );
        assert!(matches!(c, GraphError::UserNotFound { .. }));
        let c = classify(
            404,
            "itemNotFound",
            "gone",
            &call(Method::DELETE, Target::Method),
            true,
        );
        assert!(matches!(
            c,
            GraphError::MethodNotFound {
                after_retry: true,
                ..
            }
        ));
        let c = classify(
            404,
            "Request_ResourceNotFound",
            "no user",
            &call(Method::DELETE, Target::Method),
            false,
        );
        assert!(matches!(c, GraphError::UserNotFound { .. }));
        let c = classify(
            400,
            "badRequest",
            "Cannot delete the mobile phone method: it is used by the user's default sign-in method 'sms'.",
            &call(Method::DELETE, Target::Method),
            false,
        );
        assert!(matches!(c, GraphError::DefaultMethodConflict { .. }));
        let c = classify(
            400,
            "phoneNumberNotUnique",
            "x",
            &call(Method::POST, Target::Method),
            false,
        );
        assert!(matches!(c, GraphError::SmsSigninNumberNotUnique { .. }));
        let c = classify(
            400,
            "badRequest",
            "The phone method already exists for this user.",
            &call(Method::POST, Target::User),
            false,
        );
        assert!(matches!(
            c,
            GraphError::MethodAlreadyExists {
                after_retry: false,
                ..
            }
        ));
        let c = classify(
            400,
            "badRequest",
            "invalidPhoneNumber: '+1 5555551234' is not valid",
            &call(Method::POST, Target::User),
            false,
        );
        match c {
            GraphError::Rejected {
                status,
                code,
                message,
            } => {
                assert_eq!(status, 400);
                assert_eq!(code, "badRequest");
                assert!(message.contains("+1 555****234") && !message.contains("5555551234"));
            }
            other => panic!("{other:?}"),
        }
        let mut get = call(Method::GET, Target::User);
        get.path = "users/a%40b.c/authentication/phoneMethods".into();
        let c = classify(
            403,
            "accessDenied",
            "Request Authorization failed",
            &get,
            false,
        );
        match c.configuration() {
            Some(ConfigFault::MissingPermission { grant, graph, .. }) => {
                assert_eq!(*grant, "UserAuthMethod-Phone.Read.All");
                assert!(graph.contains("accessDenied"), "{graph}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.reason(), crate::Reason::ConfigurationFault);
        let mut list = call(Method::GET, Target::User);
        list.path = "users".into();
        let c = classify(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
            &list,
            false,
        );
        assert!(
            matches!(c.configuration(), Some(ConfigFault::MissingPermission { grant, .. }) if *grant == "User.Read.All"),
            "{c:?}"
        );
    }
}
