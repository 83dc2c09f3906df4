//! Public data types: seeds, user snapshots, the write log, issued passes, statistics, fixed
//! method ids.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Id of every user's mobile phone method.
pub const MOBILE_METHOD_ID: &str = "3179e48a-750b-4051-897c-87b9720928f7";
/// Id of every user's alternate mobile phone method.
pub const ALTERNATE_MOBILE_METHOD_ID: &str = "b6332ec1-7057-4abe-9331-3d72feddfe41";
/// Id of every user's office phone method.
pub const OFFICE_METHOD_ID: &str = "e37fc753-ff3b-4958-9484-eaa9425c82bc";
/// Id of every user's (single) email method.
pub const EMAIL_METHOD_ID: &str = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f";

/// Graph's `phoneType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhoneType {
    Mobile,
    AlternateMobile,
    Office,
}

impl PhoneType {
    /// The Graph name: `mobile`, `alternateMobile`, `office`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::Mobile => "mobile",
            PhoneType::AlternateMobile => "alternateMobile",
            PhoneType::Office => "office",
        }
    }

    /// The fixed method id of this type.
    pub fn method_id(self) -> &'static str {
        match self {
            PhoneType::Mobile => MOBILE_METHOD_ID,
            PhoneType::AlternateMobile => ALTERNATE_MOBILE_METHOD_ID,
            PhoneType::Office => OFFICE_METHOD_ID,
        }
    }

    /// Parses a Graph `phoneType` (case-insensitive, as Graph accepts).
    pub fn parse(s: &str) -> Option<PhoneType> {
        [
            PhoneType::Mobile,
            PhoneType::AlternateMobile,
            PhoneType::Office,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// The type whose fixed method id is `id` (case-insensitive).
    pub fn from_method_id(id: &str) -> Option<PhoneType> {
        [
            PhoneType::Mobile,
            PhoneType::AlternateMobile,
            PhoneType::Office,
        ]
        .into_iter()
        .find(|t| t.method_id().eq_ignore_ascii_case(id))
    }

    /// Default sign-in methods (`userPreferredMethodForSecondaryAuthentication`) that rely on
    /// this phone and so forbid deleting it.
    pub fn default_methods_using(self) -> &'static [&'static str] {
        match self {
            PhoneType::Mobile => &["sms", "voiceMobile"],
            PhoneType::AlternateMobile => &["voiceAlternateMobile"],
            PhoneType::Office => &["voiceOffice"],
        }
    }
}

/// An authentication method a simulated user can hold besides phones and email. Each is listed
/// by `GET /users/{id}/authentication/methods` with its `@odata.type` and counted in
/// `methodsRegistered` of the registration report (see the crate docs, "Registration report").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MethodKind {
    /// A FIDO2 security key (`fido2AuthenticationMethod`; report: `fido2SecurityKey`).
    #[serde(alias = "fido2")]
    Fido2SecurityKey,
    /// A device-bound passkey in Microsoft Authenticator (`fido2AuthenticationMethod`; report:
    /// `passKeyDeviceBoundAuthenticator`).
    #[serde(alias = "passkey")]
    PasskeyAuthenticator,
    /// Windows Hello for Business (`windowsHelloForBusinessAuthenticationMethod`; report:
    /// `windowsHelloForBusiness`).
    WindowsHello,
    /// A certificate for certificate-based authentication (`x509CertificateAuthenticationMethod`;
    /// report: `certificateBasedAuthentication`).
    Certificate,
    /// Microsoft Authenticator with push notifications
    /// (`microsoftAuthenticatorAuthenticationMethod`; report: `microsoftAuthenticatorPush`).
    Authenticator,
    /// A software OATH token, i.e. a TOTP app (`softwareOathAuthenticationMethod`; report:
    /// `softwareOneTimePasscode`).
    SoftwareOath,
    /// A Temporary Access Pass (`temporaryAccessPassAuthenticationMethod`; report:
    /// `temporaryAccessPass`).
    TemporaryAccessPass,
}

impl MethodKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [MethodKind; 7] = [
        MethodKind::Fido2SecurityKey,
        MethodKind::PasskeyAuthenticator,
        MethodKind::WindowsHello,
        MethodKind::Certificate,
        MethodKind::Authenticator,
        MethodKind::SoftwareOath,
        MethodKind::TemporaryAccessPass,
    ];
}

/// A user to seed. Missing JSON fields default to empty; JSON keys are camelCase
/// (`alternateMobile`, `defaultMethod`, `smsSignInEnabled`) or snake_case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SeedUser {
    /// Object id; a random UUID when `None`.
    pub id: Option<String>,
    #[serde(alias = "userPrincipalName")]
    pub upn: String,
    /// Phones in Graph form `+CC NUMBER[xEXT]` (not validated when seeding).
    pub mobile: Option<String>,
    #[serde(alias = "alternate_mobile")]
    pub alternate_mobile: Option<String>,
    pub office: Option<String>,
    pub email: Option<String>,
    /// `userPreferredMethodForSecondaryAuthentication`, e.g. `sms`, `voiceMobile`, `push`.
    #[serde(alias = "default_method")]
    pub default_method: Option<String>,
    /// SMS sign-in enabled on the mobile (`ready`, or `phoneNumberNotUnique` when another user
    /// already has the number enabled). Ignored without a mobile.
    #[serde(alias = "sms_sign_in_enabled")]
    pub sms_sign_in_enabled: bool,
    /// Methods beyond phones and email (passkeys, Windows Hello, Authenticator, ...): listed by
    /// `GET /users/{id}/authentication/methods` and counted by the registration report, never
    /// written through the API. JSON: `"methods": ["fido2SecurityKey", "authenticator"]`.
    pub methods: Vec<MethodKind>,
}

impl SeedUser {
    /// A user with only a UPN.
    pub fn new(upn: impl Into<String>) -> Self {
        SeedUser {
            upn: upn.into(),
            ..SeedUser::default()
        }
    }
}

/// A snapshot of one user's simulated state (also what a saved simulator state holds: seed a
/// new simulator with it through [`SeedUser::from`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    pub id: String,
    pub upn: String,
    pub mobile: Option<String>,
    pub alternate_mobile: Option<String>,
    pub office: Option<String>,
    pub email: Option<String>,
    /// The mobile method's `smsSignInState` (`ready`, `notEnabled`, `phoneNumberNotUnique`);
    /// `None` without a mobile.
    pub sms_sign_in: Option<String>,
    pub default_method: Option<String>,
    /// The methods beyond phones and email ([`SeedUser::methods`]), including
    /// [`MethodKind::TemporaryAccessPass`] while the user holds a pass (seeded or created through
    /// the API; its details: [`crate::GraphSim::tap_state`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<MethodKind>,
}

impl From<UserState> for SeedUser {
    /// The seed that recreates the user as the snapshot shows it.
    fn from(u: UserState) -> SeedUser {
        SeedUser {
            sms_sign_in_enabled: u.mobile.is_some()
                && u.sms_sign_in.as_deref().is_some_and(|s| {
                    s.eq_ignore_ascii_case("ready")
                        || s.eq_ignore_ascii_case("phoneNumberNotUnique")
                }),
            id: Some(u.id),
            upn: u.upn,
            mobile: u.mobile,
            alternate_mobile: u.alternate_mobile,
            office: u.office,
            email: u.email,
            default_method: u.default_method,
            methods: u.methods,
        }
    }
}

/// One successful write call, in the order they were applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRecord {
    /// The user's object id.
    pub user_id: String,
    /// The user's UPN.
    pub upn: String,
    /// `mobile`, `alternateMobile`, `office`, `email`, `smsSignIn`, `signInPreferences`,
    /// `temporaryAccessPass`.
    pub method: String,
    /// `create`, `update`, `delete`, `enable`, `disable` (a pass that replaces another is one
    /// `create`).
    pub op: String,
    /// The value written (phone number, email address, default method); `None` for deletes, SMS
    /// sign-in changes and passes (a pass's value is never logged: see
    /// [`crate::GraphSim::issued_passes`]).
    pub value: Option<String>,
}

/// A Temporary Access Pass the simulator issued (answered in a create's 201), replaced or
/// deleted since or not. [`crate::GraphSim::issued_passes`] lists them in issue order, so that
/// tests can look for every value ever issued in logs and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPass {
    /// The user's UPN and object id.
    pub upn: String,
    pub user_id: String,
    /// The pass's method id (`id` of the temporaryAccessPassAuthenticationMethod).
    pub method_id: String,
    /// The pass itself (`temporaryAccessPass`).
    pub value: String,
    /// `createdDateTime`.
    pub created: SystemTime,
}

/// The pass a user holds now ([`crate::GraphSim::tap_state`]), without its value. Seeded passes
/// ([`MethodKind::TemporaryAccessPass`]) are expired ones, created and started on
/// 2026-01-05T09:30:00Z for 480 minutes, one-time use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapState {
    /// The method id.
    pub id: String,
    /// `createdDateTime` and `startDateTime`.
    pub created: SystemTime,
    pub start: SystemTime,
    /// `lifetimeInMinutes` and `isUsableOnce`.
    pub lifetime_in_minutes: u32,
    pub is_usable_once: bool,
}

/// Counters since start (or the last `reset_stats`).
///
/// `requests` counts Graph API requests (a `$batch` counts once per inner request, plus one in
/// `batches`); token requests are counted apart. `ru_used` and `writes` count what was charged
/// against the budgets (requests admitted by the throttle, including faulted ones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    pub requests: u64,
    pub gets: u64,
    pub posts: u64,
    pub patches: u64,
    pub deletes: u64,
    pub batches: u64,
    pub token_requests: u64,
    pub tokens_issued: u64,
    pub token_errors: u64,
    /// Graph requests refused with 401.
    pub unauthorized: u64,
    /// Graph requests refused with 403 (the token's roles lack the operation's permission).
    pub forbidden: u64,
    /// Requests refused with 411 (a POST/PUT/PATCH without `Content-Length`).
    pub length_required: u64,
    /// Requests refused by the throttle (429 from the budgets, the reports' included; not
    /// injected).
    pub throttled: u64,
    /// Requests to the registration report, and those of them refused by its own budget.
    pub report_requests: u64,
    pub report_throttled: u64,
    pub faults_injected: u64,
    pub ru_used: u64,
    pub writes: u64,
    /// Resource units counted against the limit now: in the sliding window, or taken from the
    /// token bucket and not yet refilled.
    pub ru_in_window: u64,
    /// Writes counted against the write limit now (as `ru_in_window`).
    pub writes_in_window: u64,
    /// Highest `ru_in_window` ever reached.
    pub peak_ru_in_window: u64,
    /// Highest `writes_in_window` ever reached.
    pub peak_writes_in_window: u64,
}
