//! A Microsoft Graph simulator for authentication phone and email methods.
//!
//! [`GraphSim::start`] binds `127.0.0.1:0` and serves, under [`GraphSim::base_url`]:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials with a certificate assertion (PS256,
//!   `x5t#S256`, `aud` = the token URL, `iss` = `sub` = client id, lifetime <= 10 min, unique
//!   `jti`) for apps registered with [`GraphSim::register_app`]; answers an opaque bearer token.
//!   Not throttled, never faulted.
//! - `/v1.0` and `/beta`: `users` (paged with `$top` / `@odata.nextLink`), `users/{id}`,
//!   `users/{id}/authentication/phoneMethods[/{methodId}[/enableSmsSignIn|/disableSmsSignIn]]`,
//!   `users/{id}/authentication/emailMethods[/{methodId}]`, `$batch` (at most 20 requests),
//!   and on `/beta` only `users/{id}/authentication/signInPreferences`.
//!   `{id}` is an object id or a UPN (case-insensitive, URL-decoded).
//! - `/_sim/stats`, `/_sim/users`, `/_sim/write-log` (GET) and `/_sim/revoke-tokens` (POST):
//!   inspection for runs by hand; no authentication, no faults, not counted.
//!
//! # Throttling
//!
//! Two sliding-window budgets per simulator (one app in one tenant):
//! - resource units: every Graph request costs [`READ_COST_RU`] (1 RU) for a GET and
//!   [`WRITE_COST_RU`] (2 RU) for a write (POST, PATCH, DELETE, including the SMS sign-in
//!   actions), at most `ru_per_window` per `window`;
//! - writes: every write also costs one unit of `writes_per_window` per `write_window`.
//!
//! A request that does not fit is not charged and gets 429 `TooManyRequests` with
//! `Retry-After` = seconds until enough units leave the window (millisecond precision, may be
//! fractional, e.g. `0.35`). Each request of a `$batch` is charged on its own and can be 429
//! inside the 200 batch response. Routing errors (unknown path, 405) and 401s are not charged;
//! everything routed is, including 404s and 400s.
//!
//! # Faults
//!
//! With probability `faults.rate`, a Graph request that passed authentication and throttling
//! gets a [`FaultKind`] drawn uniformly from `faults.kinds`, before any state change (except
//! [`FaultKind::AfterCommit`], which applies the request and then answers 500).
//!
//! # Errors
//!
//! Graph errors have Graph's shape, `{"error":{"code","message","innerError"}}`:
//! - unknown user: 404 `Request_ResourceNotFound`, "Resource '{id}' does not exist ...";
//! - missing method: 404 `itemNotFound`;
//! - phone format (`+{cc} {number}[x{ext}]`): 400 `badRequest`, message starts with
//!   `invalidPhoneNumber:`;
//! - type already present: 400 `badRequest`, "The phone method already exists ...";
//! - alternateMobile without mobile: 400 `badRequest`, "An alternateMobile phone method requires
//!   a mobile phone method ..."; deleting the mobile while an alternate exists: 400 `badRequest`;
//! - changing `phoneType`: 400 `badRequest`;
//! - deleting the phone behind the default method: 400 `badRequest`, "Cannot delete the mobile
//!   phone method: it is used by the user's default sign-in method 'sms'. ..." (`sms` and
//!   `voiceMobile` hold the mobile, `voiceAlternateMobile` the alternate, `voiceOffice` the
//!   office);
//! - `enableSmsSignIn` on a number another user has enabled: 400 `phoneNumberNotUnique`;
//! - missing/unknown/revoked token: 401 `InvalidAuthenticationToken`.
//!
//! Token errors have AAD's shape `{"error","error_description":"AADSTS...","error_codes"}`:
//! 401 `invalid_client` for assertion problems, 400 for malformed requests, unknown tenants
//! (`invalid_request`), unknown apps (`unauthorized_client`) and scopes (`invalid_scope`).
//!
//! # SMS sign-in
//!
//! A mobile's `smsSignInState` is `notEnabled` unless enabled; with `sms_sign_in_policy`, a new
//! mobile is enabled at once (`ready`), or `phoneNumberNotUnique` when another user already has
//! the number enabled. Alternate and office phones report `notSupported`. The default method
//! only changes through `signInPreferences` or seeding.

mod auth;
mod config;
mod directory;
mod model;
mod response;
mod routes;
mod server;
mod throttle;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::{CertificateError, MAX_ASSERTION_LIFETIME_SECS, TOKEN_LIFETIME_SECS};
pub use config::{FaultConfig, FaultKind, SimConfig, UnknownFaultKind};
pub use model::{
    PhoneType, SeedUser, SimStats, UserState, WriteRecord, ALTERNATE_MOBILE_METHOD_ID,
    EMAIL_METHOD_ID, MOBILE_METHOD_ID, OFFICE_METHOD_ID,
};
pub use server::MAX_BATCH_REQUESTS;
pub use throttle::{READ_COST_RU, WRITE_COST_RU};

use directory::Directory;
use server::Inner;
use throttle::Throttle;

/// How long a [`FaultKind::Timeout`] holds a request unless changed with
/// [`GraphSim::set_timeout_hold`].
pub const DEFAULT_TIMEOUT_HOLD: Duration = Duration::from_secs(30);

/// A running simulator. Dropping it stops the server too; [`GraphSim::shutdown`] also waits for
/// the server task to end.
pub struct GraphSim {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn snapshot_stats(inner: &Inner) -> SimStats {
    let mut stats = inner.stats.lock().clone();
    let now = Instant::now();
    let mut t = inner.throttle.lock();
    stats.ru_in_window = t.ru.in_window(now);
    stats.writes_in_window = t.writes.in_window(now);
    stats.peak_ru_in_window = t.ru.peak();
    stats.peak_writes_in_window = t.writes.peak();
    stats
}

impl GraphSim {
    /// Starts a simulator on `127.0.0.1` with a free port.
    pub async fn start(cfg: SimConfig) -> io::Result<GraphSim> {
        GraphSim::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).await
    }

    /// Starts a simulator on `addr` (keep it on loopback).
    pub async fn start_on(addr: SocketAddr, cfg: SimConfig) -> io::Result<GraphSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            directory: Mutex::new(Directory::new(
                cfg.sms_sign_in_policy,
                cfg.auto_create_users,
            )),
            throttle: Mutex::new(Throttle::new(
                cfg.ru_per_window,
                cfg.window,
                cfg.writes_per_window,
                cfg.write_window,
            )),
            stats: Mutex::new(SimStats::default()),
            auth: auth::Auth::default(),
            faults: RwLock::new(cfg.faults.clone()),
            latency_us: AtomicU64::new(duration_micros(cfg.latency)),
            timeout_hold_ms: AtomicU64::new(duration_millis(DEFAULT_TIMEOUT_HOLD)),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let router = server::router(inner.clone());
        let task = tokio::spawn(server::serve(listener, router, shutdown_rx));
        tracing::info!(base_url = %inner.base_url, "graph simulator listening");
        Ok(GraphSim {
            inner,
            addr,
            shutdown,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, for both `GRAPH_BASE_URL` and `LOGIN_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers an app's certificate for `(tenant, client_id)` (case-insensitive).
    ///
    /// # Panics
    ///
    /// If `certificate_pem` is not a PEM X.509 certificate with an RSA key; use
    /// [`GraphSim::try_register_app`] for untrusted input.
    pub fn register_app(&self, tenant: &str, client_id: &str, certificate_pem: &str) {
        if let Err(e) = self.try_register_app(tenant, client_id, certificate_pem) {
            panic!("graph-sim: cannot register app {client_id} in {tenant}: {e}");
        }
    }

    /// Registers an app's certificate, reporting an unusable certificate.
    pub fn try_register_app(
        &self,
        tenant: &str,
        client_id: &str,
        certificate_pem: &str,
    ) -> Result<(), CertificateError> {
        self.inner
            .auth
            .register_app(tenant, client_id, certificate_pem)
    }

    /// Issues a valid bearer token without the token endpoint (tests of Graph calls alone).
    pub fn issue_token(&self) -> String {
        self.inner.auth.issue_token()
    }

    /// Invalidates every issued token: the next Graph call with one gets 401.
    pub fn revoke_tokens(&self) {
        self.inner.auth.revoke_tokens();
    }

    /// Adds a user, or replaces the one with the same id or UPN.
    pub fn add_user(&self, u: SeedUser) {
        self.inner.directory.lock().add_user(u);
    }

    /// Adds several users.
    pub fn add_users(&self, users: impl IntoIterator<Item = SeedUser>) {
        let mut d = self.inner.directory.lock();
        for u in users {
            d.add_user(u);
        }
    }

    pub fn set_faults(&self, f: FaultConfig) {
        *self.inner.faults.write() = f;
    }

    pub fn set_latency(&self, d: Duration) {
        self.inner
            .latency_us
            .store(duration_micros(d), Ordering::Relaxed);
    }

    /// How long a [`FaultKind::Timeout`] holds the request (default 30 s).
    pub fn set_timeout_hold(&self, d: Duration) {
        self.inner
            .timeout_hold_ms
            .store(duration_millis(d), Ordering::Relaxed);
    }

    /// Changes both budgets (0 = unlimited); what is already in the windows stays counted.
    pub fn set_budgets(
        &self,
        ru_per_window: u32,
        window: Duration,
        writes_per_window: u32,
        write_window: Duration,
    ) {
        let mut t = self.inner.throttle.lock();
        t.ru.reconfigure(ru_per_window, window);
        t.writes.reconfigure(writes_per_window, write_window);
    }

    pub fn set_sms_sign_in_policy(&self, on: bool) {
        self.inner.directory.lock().sms_sign_in_policy = on;
    }

    pub fn set_auto_create_users(&self, on: bool) {
        self.inner.directory.lock().auto_create_users = on;
    }

    /// A snapshot of one user, by UPN or object id (case-insensitive).
    pub fn user(&self, upn_or_id: &str) -> Option<UserState> {
        self.inner.directory.lock().user(upn_or_id)
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.inner.directory.lock().len()
    }

    /// Snapshots of all users, in the order they were added.
    pub fn users(&self) -> Vec<UserState> {
        self.inner.directory.lock().users()
    }

    pub fn stats(&self) -> SimStats {
        snapshot_stats(&self.inner)
    }

    /// Zeroes the counters and restarts the peaks from the current window contents (the
    /// budgets themselves keep what they hold).
    pub fn reset_stats(&self) {
        *self.inner.stats.lock() = SimStats::default();
        let now = Instant::now();
        let mut t = self.inner.throttle.lock();
        t.ru.reset_peak(now);
        t.writes.reset_peak(now);
    }

    /// Every successful write, in order.
    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.inner.directory.lock().write_log()
    }

    pub fn clear_write_log(&self) {
        self.inner.directory.lock().clear_write_log();
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "graph simulator task failed");
            }
        }
    }
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
