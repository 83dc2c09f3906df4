//! Readiness for the end of SMS and voice: which users keep a way to sign in when Microsoft stops
//! delivering SMS and voice codes for MFA and SSPR on 1 February 2027 (SPEC section 5), and who
//! is stranded.
//!
//! The domain here has no I/O: the methods a user has (from the registration report's
//! `methodsRegistered`, or from `GET /users/{id}/authentication/methods`) become a [`Class`]:
//!
//! | class | the user has | after 1 February 2027 |
//! |---|---|---|
//! | `phishing_resistant` | a passkey or security key (FIDO2), Windows Hello for Business or a macOS platform credential, or a certificate | signs in as before |
//! | `authenticator_app` | Microsoft Authenticator or an OATH code (TOTP app or hardware token), nothing above | signs in as before |
//! | `phone_only` | SMS / voice phones (and maybe an email), nothing above | stranded: no second factor left |
//! | `email_only` | only the SSPR email (or security questions) | no MFA method at all |
//! | `none` | nothing (a Temporary Access Pass alone counts as nothing: it expires) | no method |
//!
//! The last three are *at risk*: the ones the `--tap-file` lists for a Temporary Access Pass,
//! with which they can register a passkey. [`scan`] reads the users from Graph, [`html`]
//! renders the page, [`write_csv`] and [`write_tap_file`] the files.

pub mod html;
pub mod scan;

use std::io::Write;
use std::time::Duration;

use chrono::NaiveDate;

use crate::graph::all_methods::AuthenticationMethod;
use crate::graph::phone_methods::{PhoneType, SmsSignInState};
use crate::graph::registration::RegistrationDetails;
use crate::graph::sign_in_preferences::SignInPreferences;
use crate::mask::mask_phone;
use crate::results::SafeCsv;

/// The day Microsoft stops delivering SMS and voice codes for MFA and SSPR (SPEC section 5;
/// Global Administrators: 1 July 2027).
pub fn sms_voice_end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 2, 1).unwrap_or(NaiveDate::MIN)
}

/// Days from `today` until [`sms_voice_end`] (negative once it has passed).
pub fn days_left(today: NaiveDate) -> i64 {
    (sms_voice_end() - today).num_days()
}

/// One kind of authentication method, as both Graph sources name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// A passkey or FIDO2 security key (device-bound, in Authenticator, synced).
    Passkey,
    WindowsHello,
    /// A platform credential (macOS Secure Enclave key).
    PlatformCredential,
    /// Certificate-based authentication.
    Certificate,
    /// Microsoft Authenticator (push or passwordless phone sign-in).
    Authenticator,
    /// A software OATH token (a TOTP app).
    SoftwareOath,
    HardwareOath,
    Mobile,
    AlternateMobile,
    Office,
    Email,
    SecurityQuestion,
    TemporaryAccessPass,
    /// A name neither list below knows (kept, never a reason to count a user as ready).
    Other(String),
}

impl Method {
    /// The name used in the CSV and the page.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Passkey => "passkey",
            Method::WindowsHello => "windowsHello",
            Method::PlatformCredential => "platformCredential",
            Method::Certificate => "certificate",
            Method::Authenticator => "authenticator",
            Method::SoftwareOath => "softwareOath",
            Method::HardwareOath => "hardwareOath",
            Method::Mobile => "mobile",
            Method::AlternateMobile => "alternateMobile",
            Method::Office => "office",
            Method::Email => "email",
            Method::SecurityQuestion => "securityQuestion",
            Method::TemporaryAccessPass => "temporaryAccessPass",
            Method::Other(s) => s,
        }
    }

    /// A `methodsRegistered` value of the registration report. The values as reports give them
    /// (realmjoin/realmjoin-runbooks org/security/sync-MFA-secure-users-to-group_scheduled.md,
    /// "Method classification reference") and as Graph's pages name some of them (`fido2` in
    /// https://learn.microsoft.com/en-us/graph/api/resources/userregistrationdetails, the
    /// `passKey...` family in the beta page and in userSignInUsageByAuthMethodActivity's
    /// values): both are read.
    pub fn from_registered(name: &str) -> Method {
        match name.trim() {
            "fido2"
            | "fido2SecurityKey"
            | "passKeyDeviceBound"
            | "passKeyDeviceBoundAuthenticator"
            | "passKeyDeviceBoundWindowsHello"
            | "passKeySynced" => Method::Passkey,
            "windowsHelloForBusiness" => Method::WindowsHello,
            "macOsSecureEnclaveKey" => Method::PlatformCredential,
            "certificateBasedAuthentication" | "x509Certificate" => Method::Certificate,
            "microsoftAuthenticatorPush" | "microsoftAuthenticatorPasswordless" => {
                Method::Authenticator
            }
            "softwareOneTimePasscode" => Method::SoftwareOath,
            "hardwareOneTimePasscode" => Method::HardwareOath,
            "mobilePhone" => Method::Mobile,
            "alternateMobilePhone" => Method::AlternateMobile,
            "officePhone" => Method::Office,
            "email" => Method::Email,
            "securityQuestion" => Method::SecurityQuestion,
            "temporaryAccessPass" => Method::TemporaryAccessPass,
            other => Method::Other(other.to_string()),
        }
    }

    /// A method of the listing, by its `@odata.type` (the types derived from
    /// authenticationMethod, https://learn.microsoft.com/en-us/graph/api/resources/authenticationmethod);
    /// `None` for the password, which every user has and no one signs in to MFA with.
    pub fn from_listing(m: &AuthenticationMethod) -> Option<Method> {
        Some(match m.type_name() {
            "passwordAuthenticationMethod" => return None,
            "fido2AuthenticationMethod" => Method::Passkey,
            "windowsHelloForBusinessAuthenticationMethod" => Method::WindowsHello,
            "platformCredentialAuthenticationMethod" => Method::PlatformCredential,
            "x509CertificateAuthenticationMethod" => Method::Certificate,
            "microsoftAuthenticatorAuthenticationMethod"
            | "passwordlessMicrosoftAuthenticatorAuthenticationMethod" => Method::Authenticator,
            "softwareOathAuthenticationMethod" => Method::SoftwareOath,
            "hardwareOathAuthenticationMethod" => Method::HardwareOath,
            "emailAuthenticationMethod" => Method::Email,
            "temporaryAccessPassAuthenticationMethod" => Method::TemporaryAccessPass,
            "phoneAuthenticationMethod" => {
                match m
                    .phone_type
                    .as_deref()
                    .and_then(PhoneType::parse)
                    .or_else(|| PhoneType::from_method_id(&m.id))
                {
                    Some(PhoneType::Mobile) => Method::Mobile,
                    Some(PhoneType::AlternateMobile) => Method::AlternateMobile,
                    Some(PhoneType::Office) => Method::Office,
                    None => Method::Mobile,
                }
            }
            other => Method::Other(other.to_string()),
        })
    }

    fn is_phishing_resistant(&self) -> bool {
        matches!(
            self,
            Method::Passkey
                | Method::WindowsHello
                | Method::PlatformCredential
                | Method::Certificate
        )
    }

    fn is_app(&self) -> bool {
        matches!(
            self,
            Method::Authenticator | Method::SoftwareOath | Method::HardwareOath
        )
    }

    fn is_phone(&self) -> bool {
        matches!(
            self,
            Method::Mobile | Method::AlternateMobile | Method::Office
        )
    }

    fn is_sspr_only(&self) -> bool {
        matches!(self, Method::Email | Method::SecurityQuestion)
    }
}

/// Where a user stands (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    PhishingResistant,
    AuthenticatorApp,
    PhoneOnly,
    EmailOnly,
    None,
}

impl Class {
    /// Best first.
    pub const ALL: [Class; 5] = [
        Class::PhishingResistant,
        Class::AuthenticatorApp,
        Class::PhoneOnly,
        Class::EmailOnly,
        Class::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::PhishingResistant => "phishing_resistant",
            Class::AuthenticatorApp => "authenticator_app",
            Class::PhoneOnly => "phone_only",
            Class::EmailOnly => "email_only",
            Class::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    /// In an administrator's words.
    pub fn describe(self) -> &'static str {
        match self {
            Class::PhishingResistant => "passkey, Windows Hello or certificate",
            Class::AuthenticatorApp => "Authenticator or an OATH code, no passkey",
            Class::PhoneOnly => "SMS / voice only: stranded on 1 February 2027",
            Class::EmailOnly => "SSPR email only: no MFA method",
            Class::None => "no method",
        }
    }

    /// Without a method that outlasts SMS and voice.
    pub fn is_at_risk(self) -> bool {
        matches!(self, Class::PhoneOnly | Class::EmailOnly | Class::None)
    }
}

/// The class of a user with these methods (see the module docs).
pub fn classify(methods: &[Method]) -> Class {
    if methods.iter().any(Method::is_phishing_resistant) {
        Class::PhishingResistant
    } else if methods.iter().any(Method::is_app) {
        Class::AuthenticatorApp
    } else if methods.iter().any(Method::is_phone) {
        Class::PhoneOnly
    } else if methods.iter().any(Method::is_sspr_only) {
        Class::EmailOnly
    } else {
        Class::None
    }
}

/// One user's readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReadiness {
    /// The UPN, or the object id when Graph gave none.
    pub user: String,
    pub id: String,
    /// Each kind once, in [`Method`] order.
    pub methods: Vec<Method>,
    pub class: Class,
    /// The default second factor (`sms`, `voiceMobile`, `push`, `oath`, ...); `None`: none set
    /// or not read.
    pub default_method: Option<String>,
    /// Whether the tenant's system-preferred MFA applies (`None`: not read).
    pub system_preferred_enabled: Option<bool>,
    /// The methods system-preferred MFA picks, most secure first.
    pub system_preferred: Vec<String>,
    /// The mobile's SMS sign-in state: `None` without a mobile or when the source does not
    /// tell (the registration report never does).
    pub sms_sign_in: Option<SmsSignInState>,
    /// The mobile number, when the source gave it (the per-user listing does).
    pub mobile: Option<String>,
}

impl UserReadiness {
    fn new(user: String, id: String, mut methods: Vec<Method>) -> UserReadiness {
        methods.sort();
        methods.dedup();
        let class = classify(&methods);
        UserReadiness {
            user,
            id,
            methods,
            class,
            default_method: None,
            system_preferred_enabled: None,
            system_preferred: Vec::new(),
            sms_sign_in: None,
            mobile: None,
        }
    }

    /// A row of the registration report.
    pub fn from_report(row: &RegistrationDetails) -> UserReadiness {
        let user = row
            .user_principal_name
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| row.id.clone());
        let methods = row
            .methods_registered
            .iter()
            .map(|m| Method::from_registered(m))
            .collect();
        let mut u = UserReadiness::new(user, row.id.clone(), methods);
        // v1.0's userPreferredMethodForSecondaryAuthentication first; the beta-only
        // defaultMfaMethod when it is all there is.
        u.default_method = default_name(
            row.user_preferred_method_for_secondary_authentication
                .as_deref(),
        )
        .or_else(|| default_name(row.default_mfa_method.as_deref()));
        u.system_preferred_enabled = row.is_system_preferred_authentication_method_enabled;
        u.system_preferred = row
            .system_preferred_authentication_methods
            .iter()
            .filter_map(|m| default_name(Some(m)))
            .collect();
        u
    }

    /// A user's method listing, and its signInPreferences when they were read.
    pub fn from_listing(
        user: &str,
        id: &str,
        listing: &[AuthenticationMethod],
        prefs: Option<&SignInPreferences>,
    ) -> UserReadiness {
        let methods = listing.iter().filter_map(Method::from_listing).collect();
        let mut u = UserReadiness::new(user.to_string(), id.to_string(), methods);
        if let Some(mobile) = listing.iter().find(|m| {
            Method::from_listing(m) == Some(Method::Mobile)
                && m.type_name() == "phoneAuthenticationMethod"
        }) {
            u.sms_sign_in = mobile.sms_sign_in_state.clone();
            u.mobile = mobile.phone_number.clone();
        }
        if let Some(p) = prefs {
            u.default_method = default_name(
                p.user_preferred_method_for_secondary_authentication
                    .as_deref(),
            );
            u.system_preferred_enabled = p.is_system_preferred_authentication_method_enabled;
            u.system_preferred = default_name(p.system_preferred_authentication_method.as_deref())
                .into_iter()
                .collect();
        }
        u
    }

    /// SMS sign-in is switched on for the user's mobile.
    pub fn sms_sign_in_enabled(&self) -> Option<bool> {
        self.sms_sign_in.as_ref().map(SmsSignInState::is_enabled)
    }
}

/// A default-method value, `None` for Graph's ways of saying none (`""`, `none`).
fn default_name(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"))
        .map(str::to_string)
}

/// Counts per class, in [`Class::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: [u64; 5],
    /// Users whose mobile has SMS sign-in on, when the source tells.
    pub sms_sign_in: Option<u64>,
}

impl Tally {
    pub fn of(users: &[UserReadiness], sms_known: bool) -> Tally {
        let mut counts = [0u64; 5];
        for u in users {
            if let Some(i) = Class::ALL.iter().position(|c| *c == u.class) {
                counts[i] += 1;
            }
        }
        let sms_sign_in = sms_known.then(|| {
            users
                .iter()
                .filter(|u| u.sms_sign_in_enabled() == Some(true))
                .count() as u64
        });
        Tally {
            counts,
            sms_sign_in,
        }
    }

    pub fn count(&self, class: Class) -> u64 {
        Class::ALL
            .iter()
            .position(|c| *c == class)
            .map_or(0, |i| self.counts[i])
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The class's share of all users, in percent (0 without users).
    pub fn share(&self, class: Class) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.count(class) as f64 * 100.0 / total as f64,
        }
    }

    pub fn at_risk(&self) -> u64 {
        Class::ALL
            .iter()
            .filter(|c| c.is_at_risk())
            .map(|c| self.count(*c))
            .sum()
    }
}

/// The per-user CSV's columns.
pub const CSV_HEADER: [&str; 11] = [
    "user",
    "id",
    "class",
    "atRisk",
    "methods",
    "defaultMethod",
    "systemPreferredEnabled",
    "systemPreferred",
    "smsSignIn",
    "mobile",
    "error",
];

fn opt_bool(b: Option<bool>) -> String {
    b.map(|b| b.to_string()).unwrap_or_default()
}

/// One user's CSV cells (the mobile masked as everywhere else in the product).
pub fn csv_cells(u: &UserReadiness) -> [String; 11] {
    [
        u.user.clone(),
        u.id.clone(),
        u.class.as_str().to_string(),
        u.class.is_at_risk().to_string(),
        u.methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        u.default_method.clone().unwrap_or_default(),
        opt_bool(u.system_preferred_enabled),
        u.system_preferred.join(";"),
        u.sms_sign_in
            .as_ref()
            .map(sms_state_name)
            .unwrap_or_default(),
        u.mobile.as_deref().map(mask_phone).unwrap_or_default(),
        String::new(),
    ]
}

/// Graph's name of an SMS sign-in state.
pub fn sms_state_name(s: &SmsSignInState) -> String {
    match s {
        SmsSignInState::Ready => "ready".into(),
        SmsSignInState::PhoneNumberNotUnique => "phoneNumberNotUnique".into(),
        SmsSignInState::NotEnabled => "notEnabled".into(),
        SmsSignInState::NotAllowedByPolicy => "notAllowedByPolicy".into(),
        SmsSignInState::NotSupported => "notSupported".into(),
        SmsSignInState::NotConfigured => "notConfigured".into(),
        SmsSignInState::Other(o) => o.clone(),
    }
}

/// Writes the per-user CSV: every user, then a row per user that could not be read (its
/// `error` cell says why), every cell Excel-safe.
pub fn write_csv<W: Write>(
    w: W,
    users: &[UserReadiness],
    failed: &[(String, String)],
) -> csv::Result<W> {
    let mut out = SafeCsv::new(w);
    out.record(CSV_HEADER)?;
    for u in users {
        out.record(csv_cells(u))?;
    }
    for (user, why) in failed {
        let mut cells: [String; 11] = Default::default();
        cells[0] = user.clone();
        cells[10] = why.clone();
        out.record(cells)?;
    }
    out.into_inner()
}

/// The shortest and longest Temporary Access Pass lifetimes the input file accepts (SPEC
/// section 2: `TapLifetimeMinutes` 10-43200).
pub use crate::tap::LIFETIME_MINUTES as TAP_LIFETIME_MINUTES;

/// The TAP file's header: the user column and `TapLifetimeMinutes` (SPEC section 2).
pub const TAP_FILE_HEADER: [&str; 2] = ["UPN", "TapLifetimeMinutes"];

/// A lifetime outside [`TAP_LIFETIME_MINUTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Temporary Access Pass lifetime of {0} minutes is outside {min}-{max}", min = crate::tap::MIN_LIFETIME_MINUTES, max = crate::tap::MAX_LIFETIME_MINUTES)]
pub struct TapLifetimeError(pub u32);

/// Writes the at-risk users as an input file for Temporary Access Pass issuance: `UPN`, and
/// `TapLifetimeMinutes` = `lifetime` on every row. Returns the writer and how many users it
/// lists.
pub fn write_tap_file<W: Write>(
    w: W,
    users: &[UserReadiness],
    lifetime: u32,
) -> Result<(W, usize), TapFileError> {
    if !TAP_LIFETIME_MINUTES.contains(&lifetime) {
        return Err(TapFileError::Lifetime(TapLifetimeError(lifetime)));
    }
    let mut out = SafeCsv::new(w);
    out.record(TAP_FILE_HEADER)?;
    let mut n = 0;
    for u in users.iter().filter(|u| u.class.is_at_risk()) {
        out.record([u.user.clone(), lifetime.to_string()])?;
        n += 1;
    }
    Ok((out.into_inner()?, n))
}

/// Why the TAP file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TapFileError {
    #[error(transparent)]
    Lifetime(#[from] TapLifetimeError),
    #[error("writing the TAP file: {0}")]
    Csv(#[from] csv::Error),
}

/// Where the users are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The registration report: one request per 999 users, five requests per 10 s.
    Report,
    /// Every user, then one listing of methods per user (two with the default methods),
    /// within the resource units.
    PerUser,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Report => "report",
            Source::PerUser => "per-user",
        }
    }
}

/// The documented limits the default source is chosen by (README, "Passkey era").
pub mod limits {
    use std::time::Duration;

    /// Requests to the reports per window, per app and tenant ("Five requests per 10 seconds",
    /// https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-reports-service-limits).
    pub const REPORT_REQUESTS: u64 = 5;
    pub const REPORT_WINDOW: Duration = Duration::from_secs(10);
    /// Rows per report page asked for ([`crate::graph::REPORT_PAGE_SIZE`]).
    pub const REPORT_PAGE: u64 = crate::graph::registration::REPORT_PAGE_SIZE as u64;
    /// Users per page of `GET /users`.
    pub const USERS_PAGE: u64 = crate::graph::users::MAX_USERS_PAGE_SIZE as u64;
    /// Resource units per 10 s per app and tenant by tenant size: 3,500 under 50 users, 5,000
    /// from 50 to 500, 8,000 above (SPEC section 5;
    /// https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits).
    pub fn resource_units(users: u64) -> u64 {
        if users < 50 {
            3_500
        } else if users <= 500 {
            5_000
        } else {
            8_000
        }
    }
    pub const RU_WINDOW: Duration = Duration::from_secs(10);
}

/// How long each source would take for a tenant, by the documented limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub report: Duration,
    pub per_user: Duration,
}

/// Estimates both sources for `users` users, a round trip of `rtt` and `concurrency` requests
/// in flight; `per_user_requests` is 1 (methods) or 2 (methods and signInPreferences).
///
/// - report: `P = ceil(users / 999)` pages read one after another; five fit in any 10 s, so
///   the run lasts `10 s x floor((P - 1) / 5)` plus a round trip per page of the last window;
/// - per user: the user list (`ceil(users / 999)` pages, one after another), then
///   `users x per_user_requests` reads, no faster than `concurrency / rtt` and than the
///   resource units allow: a full bucket `B` first, then `B / 10 s`.
pub fn estimate(users: u64, rtt: Duration, concurrency: usize, per_user_requests: u64) -> Estimate {
    let rtt_s = rtt.as_secs_f64();
    let pages = users.div_ceil(limits::REPORT_PAGE).max(1);
    let windows = (pages - 1) / limits::REPORT_REQUESTS;
    let last = (pages - 1) % limits::REPORT_REQUESTS + 1;
    let report = windows as f64 * limits::REPORT_WINDOW.as_secs_f64() + last as f64 * rtt_s;
    let list_pages = users.div_ceil(limits::USERS_PAGE).max(1);
    let reads = users * per_user_requests;
    let budget = limits::resource_units(users);
    let rate = budget as f64 / limits::RU_WINDOW.as_secs_f64();
    let by_latency = reads as f64 * rtt_s / concurrency.max(1) as f64;
    let by_budget = (reads + list_pages).saturating_sub(budget) as f64 / rate;
    let per_user = list_pages as f64 * rtt_s + by_latency.max(by_budget);
    Estimate {
        report: Duration::from_secs_f64(report),
        per_user: Duration::from_secs_f64(per_user),
    }
}

impl Estimate {
    /// The faster source; the report on a tie (fewer requests).
    pub fn faster(&self) -> Source {
        if self.per_user < self.report {
            Source::PerUser
        } else {
            Source::Report
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(methods: &[&str]) -> RegistrationDetails {
        RegistrationDetails {
            id: "id1".into(),
            user_principal_name: Some("a@contoso.com".into()),
            methods_registered: methods.iter().map(|m| m.to_string()).collect(),
            ..RegistrationDetails::default()
        }
    }

    #[test]
    fn classes_follow_the_strongest_method() {
        for (methods, class) in [
            (&["mobilePhone", "fido2"][..], Class::PhishingResistant),
            (
                &["passKeyDeviceBoundAuthenticator"][..],
                Class::PhishingResistant,
            ),
            (
                &["windowsHelloForBusiness", "email"][..],
                Class::PhishingResistant,
            ),
            (
                &["certificateBasedAuthentication"][..],
                Class::PhishingResistant,
            ),
            (
                &["mobilePhone", "microsoftAuthenticatorPush"][..],
                Class::AuthenticatorApp,
            ),
            (&["softwareOneTimePasscode"][..], Class::AuthenticatorApp),
            (&["mobilePhone", "email"][..], Class::PhoneOnly),
            (&["officePhone"][..], Class::PhoneOnly),
            (&["email"][..], Class::EmailOnly),
            (&["temporaryAccessPass"][..], Class::None),
            (&["somethingNew"][..], Class::None),
            (&[][..], Class::None),
        ] {
            assert_eq!(
                UserReadiness::from_report(&reg(methods)).class,
                class,
                "{methods:?}"
            );
        }
        assert!(Class::PhoneOnly.is_at_risk() && Class::None.is_at_risk());
        assert!(!Class::AuthenticatorApp.is_at_risk());
    }

    #[test]
    fn report_rows_keep_the_default_and_system_preferred_methods() {
        let mut r = reg(&["mobilePhone"]);
        r.user_preferred_method_for_secondary_authentication = Some("".into());
        r.default_mfa_method = Some("mobilePhone".into());
        r.system_preferred_authentication_methods = vec!["sms".into()];
        r.is_system_preferred_authentication_method_enabled = Some(true);
        let u = UserReadiness::from_report(&r);
        assert_eq!(u.default_method.as_deref(), Some("mobilePhone"));
        assert_eq!(u.system_preferred, vec!["sms"]);
        assert_eq!(u.sms_sign_in, None, "the report does not tell");
        r.user_preferred_method_for_secondary_authentication = Some("voiceMobile".into());
        assert_eq!(
            UserReadiness::from_report(&r).default_method.as_deref(),
            Some("voiceMobile")
        );
    }

    #[test]
    fn the_tap_file_lists_the_users_at_risk() {
        let users: Vec<UserReadiness> = [
            &["fido2"][..],
            &["mobilePhone"][..],
            &["email"][..],
            &[][..],
            &["microsoftAuthenticatorPush"][..],
        ]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut r = reg(m);
            r.user_principal_name = Some(format!("=u{i}@contoso.com"));
            UserReadiness::from_report(&r)
        })
        .collect();
        let (out, n) = write_tap_file(Vec::new(), &users, 480).expect("tap file");
        assert_eq!(n, 3);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "UPN,TapLifetimeMinutes\n'=u1@contoso.com,480\n'=u2@contoso.com,480\n'=u3@contoso.com,480\n"
        );
        assert!(matches!(
            write_tap_file(Vec::new(), &users, 5),
            Err(TapFileError::Lifetime(TapLifetimeError(5)))
        ));
    }

    #[test]
    fn the_deadline() {
        assert_eq!(
            days_left(NaiveDate::from_ymd_opt(2027, 1, 1).expect("date")),
            31
        );
        assert_eq!(days_left(sms_voice_end()), 0);
    }

    #[test]
    fn the_estimates_and_their_crossover() {
        let rtt = Duration::from_millis(50);
        // 100,000 users: 101 report pages = 20 windows of 10 s; per user the budget binds.
        let e = estimate(100_000, rtt, 64, 1);
        assert!((e.report.as_secs_f64() - 200.05).abs() < 0.01, "{e:?}");
        assert!((e.per_user.as_secs_f64() - (101.0 * 0.05 + 92_101.0 / 800.0)).abs() < 0.01);
        assert_eq!(e.faster(), Source::PerUser);
        // Five pages fit in one window: the report is done in five round trips.
        assert_eq!(estimate(4_995, rtt, 64, 1).faster(), Source::Report);
        assert_eq!(estimate(5_000, rtt, 64, 1).faster(), Source::PerUser);
        // A slow Graph and few requests in flight: the report stays faster.
        assert_eq!(
            estimate(100_000, Duration::from_millis(250), 16, 1).faster(),
            Source::Report
        );
        assert_eq!(estimate(40, rtt, 64, 1).faster(), Source::Report);
    }
}
