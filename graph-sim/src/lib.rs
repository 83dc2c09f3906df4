//! A Microsoft Graph simulator for authentication phone and email methods. It imitates
//! Microsoft's service, not this product's client: each behaviour below cites where it is
//! documented or reported.
//!
//! [`GraphSim::start`] binds `127.0.0.1:0` and serves, under [`GraphSim::base_url`]:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials with a certificate assertion (PS256,
//!   `x5t#S256`, `aud` = the token URL, `iss` = `sub` = client id, lifetime <= 10 min, unique
//!   `jti`) for apps registered with [`GraphSim::register_app`]; answers an opaque bearer token.
//!   Not throttled, never faulted.
//! - `/v1.0` and `/beta`: `users` (paged with `$top` / `@odata.nextLink`), `users/{id}`,
//!   `users/{id}/authentication/phoneMethods[/{methodId}[/enableSmsSignIn|/disableSmsSignIn]]`,
//!   `users/{id}/authentication/emailMethods[/{methodId}]`,
//!   `users/{id}/authentication/temporaryAccessPassMethods[/{methodId}]` and
//!   `policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass`
//!   (see "Temporary Access Pass"), `$batch` (at most 20 requests),
//!   and on `/beta` only `users/{id}/authentication/signInPreferences`; `users/$count`,
//!   `users/{id}/authentication/methods` (every method, listing only) and
//!   `reports/authenticationMethods/userRegistrationDetails` (see "Registration report").
//!   `{id}` is an object id or a UPN (case-insensitive, URL-decoded).
//! - `/_sim/stats`, `/_sim/users`, `/_sim/write-log` (GET) and `/_sim/revoke-tokens` (POST):
//!   inspection for runs by hand; no authentication, no faults, not counted.
//!
//! # Throttling
//!
//! Two budgets per simulator (one app in one tenant), as Graph's identity-and-access service
//! applies them per application+tenant pair
//! (<https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits>):
//! - resource units: every Graph request costs [`READ_COST_RU`] (1 RU) for a GET and
//!   [`WRITE_COST_RU`] (2 RU) for a write (POST, PATCH, DELETE, including the SMS sign-in
//!   actions), at most `ru_per_window` per `window`;
//! - writes: every write also costs one unit of `writes_per_window` per `write_window`.
//!
//! [`SimConfig::throttle_model`] says how both are counted. [`ThrottleModel::TokenBucket`] (the
//! default) is Graph's ("Throttling is based on a token bucket algorithm, which works by adding
//! individual costs of requests", same page): a bucket of `ru_per_window` tokens refilled
//! continuously at `ru_per_window / window` per second. [`ThrottleModel::SlidingWindow`] counts
//! the units of the last `window` instead.
//!
//! A request that does not fit is not charged ("Only the requests exceeding the limits will be
//! throttled", same page) and gets 429 `TooManyRequests` with `Retry-After` = the seconds until
//! it would fit, rounded up to whole seconds, at least 1 ("retry-after set to 1 on every 429",
//! microsoftgraph/msgraph-sdk-javascript#297). The 429 carries `x-ms-throttle-scope`
//! (`Tenant_Application/ReadWrite/{appId}/{tenantId}` for the resource units,
//! `Tenant_Application/Write/...` for the writes) and `x-ms-throttle-information`
//! (`ResourceUnitLimitExceeded`, `WriteLimitExceeded`). Every admitted request carries
//! `x-ms-resource-unit` (its cost) and, while more than 0.8 of a limit it counts against is in
//! use, `x-ms-throttle-limit-percentage` (the share in use, `0.81` to `1.00` here: refused
//! requests are not charged, so the documented values up to 1.8 do not occur); all four headers as
//! described under "Additional headers" on the same page.
//! [`SimConfig::limit_percentage_header`] turns the last one off, as field reports describe Graph
//! (microsoftgraph/microsoft-graph-docs#15823). Each request of a `$batch` is charged on its own
//! and can be 429 inside the 200 batch response, with these headers in its entry. Routing errors
//! (unknown path, 405) and 401s are not charged; everything routed is, including 404s and 400s.
//!
//! # Registration report and every method
//!
//! A user holds, besides phones and email, the [`MethodKind`]s it was seeded with
//! ([`SeedUser::methods`]): passkeys and security keys, Windows Hello, a certificate,
//! Authenticator, a software OATH token, a Temporary Access Pass. They are listing only (no
//! route writes them). `GET /users/{id}/authentication/methods` lists every method with its
//! `@odata.type`, the password first; `GET /reports/authenticationMethods/userRegistrationDetails`
//! gives one row per user derived from the same state (`methods.rs` cites the source of each
//! property), paged with `$top` (100 by default, at most 999) and `@odata.nextLink`. The report
//! needs `AuditLog.Read.All` (403 `Authentication_MSGraphPermissionMissing` otherwise), a tenant
//! with Entra ID P1/P2 ([`SimConfig::premium_license`]; 403
//! `Authentication_RequestFromNonPremiumTenantOrB2CTenant` otherwise), and has its own budget of
//! 5 requests in any 10 s ([`SimConfig::report_requests_per_window`]), apart from the resource
//! units: a refused request gets 429 with a whole-second `Retry-After`. `GET /users/$count` with
//! `ConsistencyLevel: eventual` answers the number of users as text (400 without the header).
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
//! - unknown user: 404 `Request_ResourceNotFound`, "Resource '{id}' does not exist or one of its
//!   queried reference-property objects are not present." (the directory's text, seen in many
//!   field reports, e.g. ansible-collections/azure PR #2258);
//! - missing method: 404 `itemNotFound`;
//! - phone format (`+{cc} {number}[x{ext}]`): 400 `badRequest`, message starts with
//!   `invalidPhoneNumber:` ("Numbers are rejected when creating or updating if they don't match
//!   the required format", https://learn.microsoft.com/en-us/graph/api/resources/phoneauthenticationmethod);
//! - type already present: 400 `badRequest`, "The phone method already exists ...";
//! - alternateMobile without mobile: 400 `badRequest`, "An alternateMobile phone method requires
//!   a mobile phone method ..."; deleting the mobile while an alternate exists: 400 `badRequest`;
//! - changing `phoneType`: 400 `badRequest`;
//! - deleting the phone behind the default method: 400 `badRequest` in either of Graph's two
//!   wordings, "The requested authentication method id of [{id}] matches the user's current
//!   default authentication method, and cannot be deleted until the default authentication method
//!   is changed" (microsoftgraph/microsoft-graph-docs-contrib#1888) or "Cannot delete default
//!   method with other methods configured. Please change default method before deletion."
//!   (microsoftgraph/microsoft-graph-docs-contrib#2913), by turns (`sms` and `voiceMobile` hold
//!   the mobile, `voiceAlternateMobile` the alternate, `voiceOffice` the office);
//! - a missing application permission: 403, see "Permissions";
//! - missing/unknown/revoked token: 401 `InvalidAuthenticationToken`.
//!
//! No source shows Graph quoting a phone number in an error text (it quotes other values the
//! caller sent: the method id above, the user id in a 404). With
//! [`SimConfig::echo_numbers_in_errors`] the phone error texts quote the number all the same, so
//! that a client's masking of error texts is tested end to end.
//!
//! # 411 Length Required
//!
//! A POST/PUT/PATCH without `Content-Length` or `Transfer-Encoding` gets 411 with an HTML body
//! ("HTTP Error 411. The request must be chunked or have a content length."), before
//! authentication, not counted as a Graph request. "I found a common misconception that a POST
//! request with no body requires no "Content-Length: 0" header. Not all web services enforce this
//! requirement but the Microsoft.Graph endpoint does." (microsoftgraph/microsoft-graph-docs PR
//! #2262; https://learn.microsoft.com/en-us/graph/api/message-send lists `Content-Length: 0.
//! Required.`; the HTML text as reported in sreeise/graph-rs-sdk#524). Every report is of a
//! bodyless POST (`message: send`); the same front end serves `enableSmsSignIn` and
//! `disableSmsSignIn`. [`SimConfig::require_content_length`] turns it off.
//!
//! # Permissions
//!
//! Issued access tokens carry the app's granted application permissions in their `roles` claim
//! (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference:
//! "The client credential flow uses this set of permission in place of user scopes for
//! application tokens"), as granted *when the token was issued* ([`GraphSim::set_app_roles`];
//! default [`DEFAULT_ROLES`]). Every route checks them against its reference page's permissions
//! table (`routes.rs`) and answers 403 when none is granted: authentication-method paths with
//! `accessDenied` "Request Authorization failed" (microsoftgraph/msgraph-sdk-go#441,
//! microsoftgraph/msgraph-sdk-powershell#2602), directory paths (`/users`) with
//! `Authorization_RequestDenied` "Insufficient privileges to complete the operation."
//! (microsoftgraph/python-sample-auth#12). [`GraphSim::set_opaque_tokens`] issues tokens whose
//! claims cannot be read, as Microsoft reserves the right to.
//!
//! # Replication
//!
//! [`GraphSim::hide_user_for`] makes a user answer 404 for a while: "During this replication
//! window, it is normal for: ... A newly created object to return a "Not Found""
//! (https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra).
//!
//! Token errors have AAD's shape `{"error","error_description":"AADSTS...","error_codes"}`:
//! 401 `invalid_client` for assertion problems (AADSTS700027 for a certificate the app does not
//! have, 700024 for a time range), 400 for malformed requests, unknown tenants (90002,
//! `invalid_request`), unknown apps (700016, `unauthorized_client`) and scopes (`invalid_scope`)
//! (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes).
//!
//! # Temporary Access Pass
//!
//! `GET /users/{id}/authentication/temporaryAccessPassMethods` lists the user's pass (at most
//! one) and `GET .../{methodId}` gets it, with `temporaryAccessPass: null` ("Returned only on
//! creation ... returned as `null` with GET",
//! https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethod);
//! `isUsable` / `methodUsabilityReason` follow the time and the policy (`NotYetValid`,
//! `EnabledByPolicy`, `Expired`, `DisabledByPolicy`). `POST` (body `startDateTime`,
//! `lifetimeInMinutes`, `isUsableOnce`, all optional) answers 201 with the value, a fresh random
//! one of the policy's `defaultLength`, and replaces a pass the user holds (the old one is
//! deleted, https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods).
//! Refusals, all 400 `badRequest` (`tap.rs` cites each):
//! - the policy disabled or the user outside its include targets: "Converged
//!   UserCredentialPolicy does not allow creating or updating this authentication method.
//!   AuthMethodType \[TemporaryAccessPass\]." (MicrosoftDocs/azure-docs#111778; status assumed);
//! - a lifetime outside the policy's range: "Invalid LifetimeInMinutes specified. The valid
//!   range between {min} and {max}." (microsoftgraph/microsoft-graph-docs PR #12187);
//! - `isUsableOnce: false` under a one-time-use policy: "Invalid IsUsableOnce specified. Tenant
//!   Policy does not allow multiple use temporary access pass method." (KnudsenMorten/PIM4EntraPS);
//! - a start more than 5 minutes in the past: "Invalid StartDateTime specified. It can not be a
//!   time in the past." (microsoftgraph/msgraph-sdk-dotnet#2724; the 5 minutes are assumed);
//! - a property of the wrong type, invalid JSON: as on the other routes.
//!
//! `DELETE .../{methodId}` answers 204 (404 for another id). Creates and deletes are writes
//! (2 RU and one write), in the write log as `temporaryAccessPass` without the value.
//! `GET /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass`
//! (any case, or `authenticationMethodConfigurations('TemporaryAccessPass')`) shows
//! [`SimConfig::tap_policy`] ([`GraphSim::set_tap_policy`]). Permissions: reads
//! `UserAuthMethod-TAP.Read.All` or any of the writes' `UserAuthMethod-TAP.ReadWrite.All` /
//! `UserAuthenticationMethod.ReadWrite.All`, or `UserAuthenticationMethod.Read.All`; the policy
//! `Policy.Read.AuthenticationMethod`, `Policy.ReadWrite.AuthenticationMethod` or
//! `Policy.Read.All` (`routes.rs`). [`GraphSim::issued_passes`] lists every value ever issued,
//! [`GraphSim::tap_state`] the pass a user holds. A seeded
//! [`MethodKind::TemporaryAccessPass`] is an expired pass.
//!
//! # SMS sign-in
//!
//! The authentication methods policy enables SMS sign-in for all users or for named ones
//! ([`SimConfig::sms_sign_in_policy`], [`SimConfig::sms_sign_in_policy_users`]). A user outside
//! it reads `smsSignInState` `notAllowedByPolicy`, and `enableSmsSignIn` answers 405 "Can not
//! enable Sms sign in on phone auth method as the credential policy is not enabled on user."
//! (microsoft/MTC_FLWTeamsScale scripts/EnableSMS.ps1; microsoftgraph/msgraph-sdk-dotnet#2549;
//! "The user must be enabled for SMS sign-in in the authentication methods policy",
//! https://learn.microsoft.com/en-us/graph/api/phoneauthenticationmethod-enablesmssignin). For a
//! user in it, a new mobile is enabled at once ("if a user is enabled by policy to use SMS sign-in
//! and a mobile number is added, the system will attempt to register the number for use in that
//! system", https://learn.microsoft.com/en-us/graph/api/authentication-post-phonemethods): `ready`,
//! or, when another user already holds the number, the method is written and the answer is 409
//! `phoneNumberNotUnique` (realmjoin/realmjoin-runbooks PR #318), or with
//! [`SmsConflictAnswer::Accepted`] the 201 carrying `smsSignInState: phoneNumberNotUnique` (the
//! reference page's shape). `enableSmsSignIn` with such a number answers 409
//! `phoneNumberNotUnique`. Alternate and office phones report `notSupported`. The default method
//! only changes through `signInPreferences` or seeding.

mod auth;
mod config;
mod directory;
mod methods;
mod model;
mod response;
mod routes;
pub mod seeds;
mod server;
mod tap;
mod throttle;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::{CertificateError, DEFAULT_ROLES, MAX_ASSERTION_LIFETIME_SECS, TOKEN_LIFETIME_SECS};
pub use config::{
    FaultConfig, FaultKind, SimConfig, SmsConflictAnswer, TapPolicy, ThrottleModel,
    UnknownFaultKind, UnknownThrottleModel,
};
pub use methods::{PASSWORD_METHOD_ID, REPORT_DEFAULT_PAGE, REPORT_MAX_PAGE};
pub use model::{
    IssuedPass, MethodKind, PhoneType, SeedUser, SimStats, TapState, UserState, WriteRecord,
    ALTERNATE_MOBILE_METHOD_ID, EMAIL_METHOD_ID, MOBILE_METHOD_ID, OFFICE_METHOD_ID,
};
pub use server::MAX_BATCH_REQUESTS;
pub use tap::TAP_POLICY_GROUP_ID;
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
    stats.ru_in_window = t.ru.in_use(now);
    stats.writes_in_window = t.writes.in_use(now);
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
        let mut directory = Directory::new(cfg.sms_sign_in_policy, cfg.auto_create_users);
        directory.set_sms_policy_users(&cfg.sms_sign_in_policy_users);
        directory.sms_conflict_answer = cfg.sms_conflict_answer;
        directory.echo_numbers = cfg.echo_numbers_in_errors;
        directory.system_preferred = cfg.system_preferred_mfa;
        directory.set_tap_policy(cfg.tap_policy.clone());
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            directory: Mutex::new(directory),
            throttle: Mutex::new(
                Throttle::new(
                    cfg.throttle_model,
                    cfg.ru_per_window,
                    cfg.window,
                    cfg.writes_per_window,
                    cfg.write_window,
                )
                .with_reports(cfg.report_requests_per_window, cfg.report_window),
            ),
            stats: Mutex::new(SimStats::default()),
            auth: auth::Auth::default(),
            faults: RwLock::new(cfg.faults.clone()),
            latency_us: AtomicU64::new(duration_micros(cfg.latency)),
            timeout_hold_ms: AtomicU64::new(duration_millis(DEFAULT_TIMEOUT_HOLD)),
            require_content_length: AtomicBool::new(cfg.require_content_length),
            limit_percentage_header: AtomicBool::new(cfg.limit_percentage_header),
            premium_license: AtomicBool::new(cfg.premium_license),
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

    /// Grants `roles` (application permissions, e.g. `UserAuthMethod-Phone.ReadWrite.All`) to a
    /// registered app, replacing what it had: an admin consenting, or taking consent back.
    /// Tokens already issued keep their roles; the next token carries the new ones. Returns
    /// false when the app is not registered.
    pub fn set_app_roles(&self, tenant: &str, client_id: &str, roles: &[&str]) -> bool {
        self.inner.auth.set_roles(tenant, client_id, roles)
    }

    /// Issue opaque access tokens (no readable `roles`) instead of JWTs: a client must then
    /// learn a missing permission from Graph's 403.
    pub fn set_opaque_tokens(&self, on: bool) {
        self.inner.auth.opaque.store(on, Ordering::Relaxed);
    }

    /// Makes an existing user answer 404 for `delay` from now, as a user created seconds ago
    /// does while the directory replicates. Returns false when there is no such user.
    pub fn hide_user_for(&self, upn_or_id: &str, delay: Duration) -> bool {
        self.inner
            .directory
            .lock()
            .hide_until(upn_or_id, Instant::now() + delay)
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

    /// Adds (or replaces) a group whose members are these users (UPNs or object ids) or groups
    /// (ids): `GET /groups/{id}/members` and `/transitiveMembers` list them.
    pub fn add_group(&self, id: &str, members: &[&str]) {
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        self.inner.directory.lock().add_group(id, &members);
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

    /// Changes both budgets (0 = unlimited), keeping the model; what is already spent stays
    /// counted.
    pub fn set_budgets(
        &self,
        ru_per_window: u32,
        window: Duration,
        writes_per_window: u32,
        write_window: Duration,
    ) {
        let now = Instant::now();
        let mut t = self.inner.throttle.lock();
        t.ru.reconfigure(ru_per_window, window, now);
        t.writes.reconfigure(writes_per_window, write_window, now);
    }

    /// Changes the registration report's budget: `requests` in any sliding `window` (0 =
    /// unlimited; see [`SimConfig::report_requests_per_window`]).
    pub fn set_report_budget(&self, requests: u32, window: Duration) {
        let mut t = self.inner.throttle.lock();
        t.reports.reconfigure(requests, window, Instant::now());
    }

    /// Whether the tenant has Entra ID P1/P2 (see [`SimConfig::premium_license`]).
    pub fn set_premium_license(&self, on: bool) {
        self.inner.premium_license.store(on, Ordering::Relaxed);
    }

    /// Whether the tenant has system-preferred MFA on (see [`SimConfig::system_preferred_mfa`]).
    pub fn set_system_preferred_mfa(&self, on: bool) {
        self.inner.directory.lock().system_preferred = on;
    }

    /// Whether admitted requests carry `x-ms-throttle-limit-percentage` above 0.8 of a limit
    /// (see [`SimConfig::limit_percentage_header`]).
    pub fn set_limit_percentage_header(&self, on: bool) {
        self.inner
            .limit_percentage_header
            .store(on, Ordering::Relaxed);
    }

    pub fn set_sms_sign_in_policy(&self, on: bool) {
        self.inner.directory.lock().sms_sign_in_policy = on;
    }

    /// Targets the SMS sign-in policy at these users only (UPNs or object ids; empty: all).
    pub fn set_sms_sign_in_policy_users(&self, users: &[&str]) {
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        self.inner.directory.lock().set_sms_policy_users(&users);
    }

    pub fn set_sms_conflict_answer(&self, answer: SmsConflictAnswer) {
        self.inner.directory.lock().sms_conflict_answer = answer;
    }

    /// Quote phone numbers in phone error texts (see [`SimConfig::echo_numbers_in_errors`]).
    pub fn set_echo_numbers_in_errors(&self, on: bool) {
        self.inner.directory.lock().echo_numbers = on;
    }

    /// Whether a POST/PUT/PATCH without `Content-Length` gets 411 (default true).
    pub fn set_require_content_length(&self, on: bool) {
        self.inner
            .require_content_length
            .store(on, Ordering::Relaxed);
    }

    pub fn set_auto_create_users(&self, on: bool) {
        self.inner.directory.lock().auto_create_users = on;
    }

    /// Replaces the Temporary Access Pass policy (see [`TapPolicy`]). Passes already issued stay;
    /// how they are shown follows the new policy (`DisabledByPolicy` outside it).
    pub fn set_tap_policy(&self, policy: TapPolicy) {
        self.inner.directory.lock().set_tap_policy(policy);
    }

    /// The Temporary Access Pass policy in force.
    pub fn tap_policy(&self) -> TapPolicy {
        self.inner.directory.lock().tap_policy().clone()
    }

    /// Every Temporary Access Pass issued (each create's 201, and each create answered with an
    /// [`FaultKind::AfterCommit`] 500), in issue order, replaced and deleted ones included:
    /// what a test must never find in logs or files.
    pub fn issued_passes(&self) -> Vec<IssuedPass> {
        self.inner.directory.lock().issued_passes()
    }

    /// The pass a user (UPN or object id) holds now, seeded or created; `None` without one or
    /// without such a user. [`UserState::methods`] lists [`MethodKind::TemporaryAccessPass`]
    /// exactly while there is one.
    pub fn tap_state(&self, upn_or_id: &str) -> Option<TapState> {
        self.inner.directory.lock().tap_state(upn_or_id)
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
