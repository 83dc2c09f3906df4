//! Simulator configuration: latency, throttling budgets, fault injection and tenant policy.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How the simulator behaves. `Default` models a large tenant (8,000 RU per 10 s, 3,000 writes
/// per 150 s, counted as token buckets), no latency, no faults, SMS sign-in allowed for nobody, only seeded users exist,
/// bodyless POSTs without `Content-Length` refused, SMS sign-in conflicts answered 409, the
/// Temporary Access Pass enabled for everyone with the portal's settings ([`TapPolicy`]).
///
/// A budget of `0` disables that budget (unlimited).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Delay added to every request (Graph and token endpoint) before it is processed.
    pub latency: Duration,
    /// How both budgets are counted (see the crate docs, "Throttling").
    pub throttle_model: ThrottleModel,
    /// Send `x-ms-throttle-limit-percentage` when usage is above 0.8 of a limit, as Microsoft
    /// documents. Off: as field reports describe Graph (the header never came, even with 429s:
    /// microsoftgraph/microsoft-graph-docs#15823), so a client must not depend on it.
    pub limit_percentage_header: bool,
    /// Resource units per `window` (GET = 1 RU, write = 2 RU; see the crate docs).
    pub ru_per_window: u32,
    /// The resource-unit window: a bucket of `ru_per_window` refilled over `window`, or the
    /// length of the sliding window.
    pub window: Duration,
    /// Write requests (POST/PATCH/DELETE) per `write_window`.
    pub writes_per_window: u32,
    /// The write window (a bucket's refill time, or the sliding window's length).
    pub write_window: Duration,
    /// Random fault injection.
    pub faults: FaultConfig,
    /// The authentication methods policy enables SMS sign-in (the Text message method with
    /// "use for sign-in") for users: for all of them, or only for
    /// [`SimConfig::sms_sign_in_policy_users`] when that is not empty. A user in the policy gets
    /// SMS sign-in on a new mobile at once; a user outside it has `smsSignInState`
    /// `notAllowedByPolicy` and `enableSmsSignIn` answers 400.
    pub sms_sign_in_policy: bool,
    /// The users (UPN or object id, case-insensitive) the SMS sign-in policy targets; empty:
    /// every user.
    pub sms_sign_in_policy_users: Vec<String>,
    /// How a mobile create/update answers when policy enables SMS sign-in for the user and
    /// another user already holds the number for SMS sign-in.
    pub sms_conflict_answer: SmsConflictAnswer,
    /// Refuse a POST/PUT/PATCH without `Content-Length` or `Transfer-Encoding` with 411, as
    /// Graph's HTTP/1.1 front end does.
    pub require_content_length: bool,
    /// Quote the phone number in the texts of phone errors (400 invalid number, 409
    /// `phoneNumberNotUnique`). No source shows Graph doing so; it makes a client's masking of
    /// error texts testable end to end. Default off.
    pub echo_numbers_in_errors: bool,
    /// Any UPN (a user id containing `@`) exists: unknown users are created on first use.
    pub auto_create_users: bool,
    /// Requests per `report_window` to the registration report
    /// (`/reports/authenticationMethods/userRegistrationDetails`), its own budget apart from the
    /// resource units: "Identity and access reports service limits ... Any ... Five requests
    /// per 10 seconds" per app per tenant
    /// (https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-reports-service-limits;
    /// the limit for the app across all tenants, 122 per 10 s, does not bind one tenant). Counted
    /// as a sliding window, the stricter reading (no source says how), 0 = unlimited.
    pub report_requests_per_window: u32,
    pub report_window: Duration,
    /// The tenant has system-preferred MFA on: the report's
    /// `isSystemPreferredAuthenticationMethodEnabled` and `systemPreferredAuthenticationMethods`,
    /// and signInPreferences' `systemPreferredAuthenticationMethod`. Default off.
    pub system_preferred_mfa: bool,
    /// The tenant has Microsoft Entra ID P1 or P2. Without it the registration report answers
    /// 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant` "Neither tenant is B2C or
    /// tenant doesn't have premium license" whatever the app's permissions
    /// (https://learn.microsoft.com/en-us/graph/known-issues, "License check errors for Azure AD
    /// activity reports"; "The registration report requires an Entra ID P1 or P2 license",
    /// realmjoin/realmjoin-runbooks org/security/sync-MFA-secure-users-to-group_scheduled.md).
    /// Default on.
    pub premium_license: bool,
    /// The Temporary Access Pass policy of the authentication methods policy (see
    /// [`TapPolicy`]). Default: enabled for all users with the portal's defaults.
    pub tap_policy: TapPolicy,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            throttle_model: ThrottleModel::default(),
            limit_percentage_header: true,
            ru_per_window: 8000,
            window: Duration::from_secs(10),
            writes_per_window: 3000,
            write_window: Duration::from_secs(150),
            faults: FaultConfig::default(),
            sms_sign_in_policy: false,
            sms_sign_in_policy_users: Vec::new(),
            sms_conflict_answer: SmsConflictAnswer::Conflict,
            require_content_length: true,
            echo_numbers_in_errors: false,
            auto_create_users: false,
            report_requests_per_window: 5,
            report_window: Duration::from_secs(10),
            system_preferred_mfa: false,
            premium_license: true,
            tap_policy: TapPolicy::default(),
        }
    }
}

/// The tenant's Temporary Access Pass policy, as
/// `GET /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass`
/// shows it (https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration)
/// and as creating a pass enforces it (see the crate docs, "Temporary Access Pass").
///
/// `Default` is a tenant whose admin turned the method on in the portal and kept its settings:
/// the values of the example of
/// https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethodconfiguration-get
/// (`defaultLifetimeInMinutes` 60, `defaultLength` 8, `minimumLifetimeInMinutes` 60,
/// `maximumLifetimeInMinutes` 480, `isUsableOnce` false, include target `all_users`). The
/// 60..480 range is also what Graph enforced when a field report hit it ("Invalid
/// LifetimeInMinutes specified. The valid range between 60 and 480.",
/// microsoftgraph/microsoft-graph-docs PR #12187; glueckkanja/MyWorkID PR #124: "the actual
/// validation enforced by the Microsoft Graph API (60–480 minutes)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPolicy {
    /// `state`: `enabled` or `disabled`.
    pub enabled: bool,
    /// `defaultLifetimeInMinutes`: a create without `lifetimeInMinutes` gets it.
    pub default_lifetime: u32,
    /// `minimumLifetimeInMinutes` and `maximumLifetimeInMinutes`: a requested lifetime outside
    /// them is refused with 400.
    pub min_lifetime: u32,
    pub max_lifetime: u32,
    /// `defaultLength`: characters of every issued pass (Graph: 8 to 48).
    pub default_length: u32,
    /// `isUsableOnce`: every pass is one-time use, and asking for a reusable one is refused.
    pub is_usable_once: bool,
    /// The users in scope (UPNs or object ids, case-insensitive): shown as one include target,
    /// the group [`crate::TAP_POLICY_GROUP_ID`] holding them. `None`: every user (the target
    /// `all_users`).
    pub included: Option<Vec<String>>,
}

impl Default for TapPolicy {
    fn default() -> Self {
        TapPolicy {
            enabled: true,
            default_lifetime: 60,
            min_lifetime: 60,
            max_lifetime: 480,
            default_length: 8,
            is_usable_once: false,
            included: None,
        }
    }
}

impl TapPolicy {
    /// The policy with `state: disabled` and the same settings.
    pub fn disabled() -> Self {
        TapPolicy {
            enabled: false,
            ..TapPolicy::default()
        }
    }
}

/// How a budget of `limit` units per `window` is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottleModel {
    /// A bucket holding `limit` tokens, refilled continuously at `limit / window` per second;
    /// a request takes its cost out of it. Graph's identity-and-access model ("Throttling is based
    /// on a token bucket algorithm", https://learn.microsoft.com/en-us/graph/throttling-limits).
    #[default]
    TokenBucket,
    /// At most `limit` units in any sliding `window`: a full budget can be spent at once, and
    /// comes back only as the requests leave the window.
    SlidingWindow,
}

impl ThrottleModel {
    /// The name used by `FromStr` and `Display`: `token-bucket`, `sliding-window`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleModel::TokenBucket => "token-bucket",
            ThrottleModel::SlidingWindow => "sliding-window",
        }
    }
}

impl fmt::Display for ThrottleModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown throttle model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown throttle model '{0}' (expected token-bucket or sliding-window)")]
pub struct UnknownThrottleModel(pub String);

impl FromStr for ThrottleModel {
    type Err = UnknownThrottleModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "token-bucket" | "bucket" => Ok(ThrottleModel::TokenBucket),
            "sliding-window" | "window" => Ok(ThrottleModel::SlidingWindow),
            _ => Err(UnknownThrottleModel(s.to_string())),
        }
    }
}

/// Graph's two reported answers to a mobile write whose number another user holds for SMS
/// sign-in (the method is written either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmsConflictAnswer {
    /// 409 `phoneNumberNotUnique` (the stricter shape, and the default).
    #[default]
    Conflict,
    /// 201 (create) / 204 (update) with the method's `smsSignInState` `phoneNumberNotUnique`.
    Accepted,
}

/// Random faults on Graph endpoints (never on the token endpoint or on the in-process control API).
///
/// Each Graph request that passed authentication and throttling is faulted with probability
/// `rate`; the kind is drawn uniformly from `kinds`. An empty `kinds` list injects nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Probability in `[0, 1]` that a request is faulted.
    pub rate: f64,
    /// Kinds to draw from.
    pub kinds: Vec<FaultKind>,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        FaultConfig::default()
    }

    /// Faults with probability `rate`, drawn from `kinds`.
    pub fn new(rate: f64, kinds: Vec<FaultKind>) -> Self {
        FaultConfig { rate, kinds }
    }

    /// Every transient kind (all but [`FaultKind::AfterCommit`]).
    pub fn transient(rate: f64) -> Self {
        FaultConfig::new(
            rate,
            vec![
                FaultKind::Throttle429,
                FaultKind::Status500,
                FaultKind::Status503,
                FaultKind::Timeout,
                FaultKind::Drop,
            ],
        )
    }

    pub(crate) fn is_active(&self) -> bool {
        self.rate > 0.0 && !self.kinds.is_empty()
    }
}

/// What an injected fault does. All kinds except `AfterCommit` strike before any state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 429 `TooManyRequests` with a fractional `Retry-After` (0.05-0.5 s). Not Graph's
    /// throttling (that answers whole seconds): it keeps a client's parsing of fractions tested.
    Throttle429,
    /// 500 `generalException`.
    Status500,
    /// 503 `serviceNotAvailable`, with a `Retry-After` half of the time.
    Status503,
    /// The request is held (30 s by default, see `GraphSim::set_timeout_hold`), then 504.
    Timeout,
    /// The connection is closed without any response.
    Drop,
    /// The request is applied, then answered with 500 (proves client idempotence).
    AfterCommit,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Throttle429,
        FaultKind::Status500,
        FaultKind::Status503,
        FaultKind::Timeout,
        FaultKind::Drop,
        FaultKind::AfterCommit,
    ];

    /// The name used by `FromStr` and `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttle429 => "429",
            FaultKind::Status500 => "500",
            FaultKind::Status503 => "503",
            FaultKind::Timeout => "timeout",
            FaultKind::Drop => "drop",
            FaultKind::AfterCommit => "after-commit",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown fault kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault kind '{0}' (expected one of 429, 500, 503, timeout, drop, after-commit)")]
pub struct UnknownFaultKind(pub String);

impl FromStr for FaultKind {
    type Err = UnknownFaultKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "429" | "throttle" | "throttle429" => Ok(FaultKind::Throttle429),
            "500" | "status500" => Ok(FaultKind::Status500),
            "503" | "status503" => Ok(FaultKind::Status503),
            "timeout" => Ok(FaultKind::Timeout),
            "drop" => Ok(FaultKind::Drop),
            "after-commit" | "aftercommit" | "after_commit" => Ok(FaultKind::AfterCommit),
            _ => Err(UnknownFaultKind(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_kind_names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(k.as_str().parse::<FaultKind>(), Ok(k));
        }
        assert!("teapot".parse::<FaultKind>().is_err());
    }

    #[test]
    fn throttle_model_names_round_trip() {
        for m in [ThrottleModel::TokenBucket, ThrottleModel::SlidingWindow] {
            assert_eq!(m.as_str().parse::<ThrottleModel>(), Ok(m));
        }
        assert_eq!(ThrottleModel::default(), ThrottleModel::TokenBucket);
        assert!("leaky".parse::<ThrottleModel>().is_err());
    }

    #[test]
    fn empty_kinds_is_inactive() {
        assert!(!FaultConfig::new(1.0, vec![]).is_active());
        assert!(!FaultConfig::new(0.0, vec![FaultKind::Drop]).is_active());
        assert!(FaultConfig::transient(0.1).is_active());
    }
}
