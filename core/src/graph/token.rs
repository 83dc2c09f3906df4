//! The app-only token: requested with the client assertion of [`Credentials`], cached and shared
//! by every task of a client, refreshed before it expires; a refusal is remembered for
//! [`REFUSAL_MEMORY`] so a rejected certificate is not asked about once per message, and the
//! secret is read again once on `invalid_client` (rotation).
//!
//! A token is never printed: [`AccessToken`] implements `Debug` by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::config::GraphSettings;
use crate::graph::credentials::{unix_now, Credentials};
use crate::graph::error::TokenError;
use crate::graph::retry::{backoff_delay, parse_retry_after};

/// A cached token is renewed this long before it expires.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A bearer token. `Debug` and `Display` do not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub fn new(token: impl Into<Arc<str>>) -> AccessToken {
        AccessToken(token.into())
    }

    /// The token itself, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    fetched_at: Instant,
    /// The token's `roles` claim (`None`: not a readable JWT).
    roles: Option<Arc<[String]>>,
}

/// How long a refusal by the token endpoint (a certificate Entra does not know, a wrong tenant)
/// is remembered: token requests in that time fail at once with the same error instead of asking
/// again for every message.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

/// Reads the credentials again (the worker: the secret), for when the token endpoint says
/// `invalid_client`: the certificate may have been rotated in the secret since it was read.
#[async_trait::async_trait]
pub trait CredentialsReloader: Send + Sync {
    async fn reload(&self) -> Result<Credentials, String>;
}

/// App-only tokens for Graph, fetched with the client assertion and cached until
/// [`TOKEN_REFRESH_MARGIN`] before they expire. Build it once (outside the Lambda handler) and
/// share it: concurrent callers wait for one token request instead of each making their own.
pub struct TokenProvider {
    http: reqwest::Client,
    credentials: std::sync::RwLock<Arc<Credentials>>,
    reloader: std::sync::OnceLock<Arc<dyn CredentialsReloader>>,
    /// The last refusal and when it came ([`REFUSAL_MEMORY`]).
    refused: std::sync::Mutex<Option<(TokenError, Instant)>>,
    token_url: String,
    scope: String,
    cache: tokio::sync::Mutex<Option<Cached>>,
    requests: AtomicU64,
    max_attempts: u32,
    /// The token endpoint's clock minus ours, seconds, from its last answer's `Date` header.
    clock_skew: std::sync::atomic::AtomicI64,
    has_skew: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .field("token_requests", &self.token_requests())
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    pub fn new(
        http: reqwest::Client,
        credentials: Arc<Credentials>,
        settings: &GraphSettings,
    ) -> TokenProvider {
        TokenProvider {
            token_url: settings.token_url(credentials.tenant_id()),
            scope: settings.scope(),
            http,
            credentials: std::sync::RwLock::new(credentials),
            reloader: std::sync::OnceLock::new(),
            refused: std::sync::Mutex::new(None),
            cache: tokio::sync::Mutex::new(None),
            requests: AtomicU64::new(0),
            max_attempts: 4,
            clock_skew: std::sync::atomic::AtomicI64::new(0),
            has_skew: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The credentials in use.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Lets an `invalid_client` refusal read the credentials again once (see
    /// [`CredentialsReloader`]). Set once; later calls are ignored.
    pub fn set_reloader(&self, reloader: Arc<dyn CredentialsReloader>) {
        let _ = self.reloader.set(reloader);
    }

    /// The refusal still remembered, if any.
    fn remembered_refusal(&self) -> Option<TokenError> {
        let r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        r.as_ref()
            .filter(|(_, at)| at.elapsed() < REFUSAL_MEMORY)
            .map(|(e, _)| e.clone())
    }

    fn remember_refusal(&self, e: &TokenError) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some((e.clone(), Instant::now()));
    }

    /// A token from the endpoint; on `invalid_client`, the credentials are read again once and,
    /// when they changed (a rotated certificate), tried at once. A refusal is remembered for
    /// [`REFUSAL_MEMORY`].
    async fn fetch_fresh(&self) -> Result<(AccessToken, Duration), TokenError> {
        if let Some(e) = self.remembered_refusal() {
            return Err(e);
        }
        let first = self.fetch().await;
        let refused = match first {
            Err(e @ TokenError::Rejected { .. }) => e,
            other => {
                if other.is_ok() {
                    *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                return other;
            }
        };
        let invalid_client =
            matches!(&refused, TokenError::Rejected { error, .. } if error == "invalid_client");
        if let (true, Some(reloader)) = (invalid_client, self.reloader.get()) {
            match reloader.reload().await {
                Ok(fresh) if fresh.x5t_s256() != self.credentials().x5t_s256() => {
                    tracing::warn!(
                        x5t_s256 = %fresh.x5t_s256(),
                        "the token endpoint refused the certificate and the secret holds another one: using it"
                    );
                    *self.credentials.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                    let again = self.fetch().await;
                    if let Err(e @ TokenError::Rejected { .. }) = &again {
                        self.remember_refusal(e);
                    }
                    return again;
                }
                Ok(_) => {}
                Err(why) => tracing::warn!(error = %why, "the credentials could not be read again"),
            }
        }
        self.remember_refusal(&refused);
        Err(refused)
    }

    /// The token endpoint's clock minus this machine's, in seconds, as its last answer's `Date`
    /// header showed (`None` before any answer). Entra refuses assertions outside their time
    /// range (AADSTS700024): a large skew explains it.
    pub fn clock_skew(&self) -> Option<i64> {
        self.has_skew
            .load(Ordering::Relaxed)
            .then(|| self.clock_skew.load(Ordering::Relaxed))
    }

    /// Token requests sent so far (each HTTP attempt counts).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a new one (one request in flight at a time).
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        self.token_and_roles().await.map(|(t, _)| t)
    }

    /// The application permissions the current token grants (its `roles` claim), fetching a
    /// token when none is cached; `None` when the token is not a readable JWT.
    pub async fn roles(&self) -> Result<Option<Arc<[String]>>, TokenError> {
        self.token_and_roles().await.map(|(_, r)| r)
    }

    /// Drops the cached token when it was fetched more than `age` ago, so that the next call
    /// sees permissions granted since.
    pub async fn refresh_if_older_than(&self, age: Duration) -> bool {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.fetched_at.elapsed() > age) {
            *cache = None;
            return true;
        }
        false
    }

    async fn token_and_roles(&self) -> Result<(AccessToken, Option<Arc<[String]>>), TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok((c.token.clone(), c.roles.clone()));
            }
        }
        let (token, lifetime) = self.fetch_fresh().await?;
        let margin = if lifetime > TOKEN_REFRESH_MARGIN * 2 {
            TOKEN_REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        let roles: Option<Arc<[String]>> =
            crate::graph::permissions::roles_of_token(token.secret()).map(Into::into);
        let now = Instant::now();
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: now + lifetime.saturating_sub(margin),
            fetched_at: now,
            roles: roles.clone(),
        });
        Ok((token, roles))
    }

    /// Drops the cached token if it is still `stale` (a 401 answered it). Concurrent callers
    /// that saw the same 401 cause one refresh, not one each.
    pub async fn invalidate(&self, stale: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == stale) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), TokenError> {
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            let credentials = self.credentials();
            let assertion = credentials.client_assertion(&self.token_url)?;
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", credentials.client_id()),
                ("scope", self.scope.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ];
            self.requests.fetch_add(1, Ordering::Relaxed);
            let delay = match self.http.post(&self.token_url).form(&form).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if let Some(date) = resp
                        .headers()
                        .get(reqwest::header::DATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| httpdate::parse_http_date(v).ok())
                    {
                        let theirs = date
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                        let ours = i64::try_from(unix_now()).unwrap_or(i64::MAX);
                        self.clock_skew.store(theirs - ours, Ordering::Relaxed);
                        self.has_skew.store(true, Ordering::Relaxed);
                    }
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    if status.is_success() {
                        let body: TokenResponse = resp
                            .json()
                            .await
                            .map_err(|e| TokenError::InvalidResponse(format!("not JSON ({e})")))?;
                        return parse_token_response(body);
                    }
                    let code = status.as_u16();
                    if code == 429 || status.is_server_error() {
                        last = format!("HTTP {code}");
                        retry_after.unwrap_or_else(|| {
                            backoff_delay(
                                attempt,
                                Duration::from_millis(200),
                                Duration::from_secs(5),
                            )
                        })
                    } else {
                        let body: TokenErrorBody = resp.json().await.unwrap_or_default();
                        return Err(TokenError::Rejected {
                            status: code,
                            error: body.error,
                            description: body.error_description,
                        });
                    }
                }
                Err(e) => {
                    last = format!(
                        "network: {}",
                        crate::graph::retry::describe_reqwest_error(&e)
                    );
                    backoff_delay(attempt, Duration::from_millis(200), Duration::from_secs(5))
                }
            };
            tracing::warn!(attempt, error = %last, "token request failed, retrying");
            if attempt < self.max_attempts {
                tokio::time::sleep(delay.min(Duration::from_secs(30))).await;
            }
        }
        Err(TokenError::Unavailable {
            attempts: self.max_attempts,
            last,
        })
    }
}

fn parse_token_response(body: TokenResponse) -> Result<(AccessToken, Duration), TokenError> {
    let token = body
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::InvalidResponse("no access_token".into()))?;
    // `expires_in` is a number, or a string holding one (older endpoints).
    let secs = match body.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| TokenError::InvalidResponse("no usable expires_in".into()))?;
    Ok((AccessToken::new(token), Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_accepts_string_expiry() {
        let (t, d) = parse_token_response(TokenResponse {
            access_token: Some("abc".into()),
            expires_in: Some(serde_json::json!("3599")),
        })
        .unwrap();
        assert_eq!(t.secret(), "abc");
        assert_eq!(d, Duration::from_secs(3599));
        assert!(parse_token_response(TokenResponse {
            access_token: None,
            expires_in: None
        })
        .is_err());
    }
}
