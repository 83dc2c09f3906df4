//! Every authentication method of a user as `GET /users/{id}/authentication/methods` lists it,
//! and the user's row of the registration report
//! (`GET /reports/authenticationMethods/userRegistrationDetails`), both derived from the same
//! simulated state so that the two agree. Pure: the directory hands in what the user holds.

use serde_json::{json, Map, Value};

use crate::model::{MethodKind, PhoneType, EMAIL_METHOD_ID};

/// The password method's id: "`28c10230-6103-485e-b985-444c60001490` is the globally unique ID
/// of the password authentication method across Microsoft Entra ID"
/// (<https://learn.microsoft.com/en-us/graph/api/authentication-list-methods>, example response).
pub const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";

/// Largest page of the registration report, and its page size without `$top`. Graph's page of
/// that API states no page size. The largest: clients ask for `$top=999` and get it
/// (`Get-MgReportAuthenticationMethodUserRegistrationDetail -All -PageSize 999`,
/// microsoftgraph/msgraph-sdk-powershell#1987). Without `$top`: 100, Graph's default page of
/// directory listings ("use `$top=500` to get the maximum 500 users per page instead of the
/// default 100", https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-reports-best-practices).
pub const REPORT_MAX_PAGE: usize = 999;
pub const REPORT_DEFAULT_PAGE: usize = 100;

/// What one user holds, as the listing and the report need it.
pub(crate) struct Held<'a> {
    pub(crate) id: &'a str,
    pub(crate) upn: &'a str,
    pub(crate) phones: [(PhoneType, Option<&'a str>); 3],
    /// The mobile's `smsSignInState` as Graph shows it.
    pub(crate) sms_state: &'static str,
    pub(crate) email: Option<&'a str>,
    pub(crate) default_method: Option<&'a str>,
    /// The other methods, each with its id.
    pub(crate) methods: &'a [(MethodKind, String)],
    /// The Temporary Access Pass object, as its own route lists it (the
    /// [`MethodKind::TemporaryAccessPass`] entry of `methods` stands for it).
    pub(crate) tap: Option<Value>,
    /// The tenant has system-preferred MFA on.
    pub(crate) system_preferred: bool,
    /// `lastUpdatedDateTime` of the report row (RFC 3339).
    pub(crate) updated: &'a str,
}

/// A fixed, plausible creation time for listed methods (Graph lists one per method).
const CREATED: &str = "2026-01-05T09:30:00Z";

/// `@odata.type` and the properties of one method, as each resource page describes them:
/// - fido2AuthenticationMethod (`displayName`, `createdDateTime`, `aaGuid`, `model`,
///   `attestationLevel`): https://learn.microsoft.com/en-us/graph/api/resources/fido2authenticationmethod
///   and the example of https://learn.microsoft.com/en-us/graph/api/authentication-list-methods;
///   a passkey in Authenticator is a fido2AuthenticationMethod whose `aaGuid` is Authenticator's
///   (https://learn.microsoft.com/en-us/entra/identity/authentication/how-to-enable-authenticator-passkey);
/// - windowsHelloForBusinessAuthenticationMethod (`displayName`, `createdDateTime`,
///   `keyStrength`): https://learn.microsoft.com/en-us/graph/api/resources/windowshelloforbusinessauthenticationmethod;
/// - microsoftAuthenticatorAuthenticationMethod (`displayName`, `deviceTag`, `phoneAppVersion`,
///   `createdDateTime`): https://learn.microsoft.com/en-us/graph/api/resources/microsoftauthenticatorauthenticationmethod;
/// - softwareOathAuthenticationMethod (`secretKey`, never returned):
///   https://learn.microsoft.com/en-us/graph/api/resources/softwareoathauthenticationmethod;
/// - temporaryAccessPassAuthenticationMethod (`createdDateTime`, `startDateTime`,
///   `lifetimeInMinutes`, `isUsableOnce`, `isUsable`, `methodUsabilityReason`; the pass itself
///   only at creation): https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethod;
///   a user's pass is listed as [`Held::tap`] (what `temporaryAccessPassMethods` lists), this
///   fixed expired one only when none is handed in;
/// - x509CertificateAuthenticationMethod: no reference page describes it (only the policy's
///   x509CertificateAuthenticationMethodConfiguration); scripts that read
///   `/authentication/methods` match this type for certificate-based authentication (field
///   reports), so it is listed with an id and a display name only.
fn other_method_json(kind: MethodKind, id: &str) -> Value {
    match kind {
        MethodKind::Fido2SecurityKey => json!({
            "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
            "id": id,
            "displayName": "Security key",
            "createdDateTime": CREATED,
            "aaGuid": "2fc0579f-8113-47ea-b116-555a8db9202a",
            "model": "NFC key",
            "attestationLevel": "attested",
        }),
        MethodKind::PasskeyAuthenticator => json!({
            "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
            "id": id,
            "displayName": "Passkey in Microsoft Authenticator",
            "createdDateTime": CREATED,
            "aaGuid": "90a3ccdf-635c-4729-a248-9b709135078f",
            "model": "Microsoft Authenticator",
            "attestationLevel": "attested",
        }),
        MethodKind::WindowsHello => json!({
            "@odata.type": "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
            "id": id,
            "displayName": "Laptop",
            "createdDateTime": CREATED,
            "keyStrength": "normal",
        }),
        MethodKind::Certificate => json!({
            "@odata.type": "#microsoft.graph.x509CertificateAuthenticationMethod",
            "id": id,
            "displayName": "Smart card",
        }),
        MethodKind::Authenticator => json!({
            "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": id,
            "displayName": "Phone",
            "deviceTag": "SoftwareTokenActivated",
            "phoneAppVersion": "6.2401.0119",
            "createdDateTime": CREATED,
        }),
        MethodKind::SoftwareOath => json!({
            "@odata.type": "#microsoft.graph.softwareOathAuthenticationMethod",
            "id": id,
            "secretKey": null,
        }),
        MethodKind::TemporaryAccessPass => json!({
            "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
            "id": id,
            "createdDateTime": CREATED,
            "startDateTime": CREATED,
            "lifetimeInMinutes": 480,
            "isUsableOnce": true,
            "isUsable": false,
            "methodUsabilityReason": "Expired",
        }),
    }
}

/// `GET /users/{id}/authentication/methods`: every method, each with its `@odata.type`
/// ("The authentication methods are defined by the types derived from the authenticationMethod
/// resource type", https://learn.microsoft.com/en-us/graph/api/authentication-list-methods).
/// The password comes first, as in the page's examples (a cloud user always has one); phones as
/// phoneAuthenticationMethod (`phoneNumber`, `phoneType`, `smsSignInState`), the email as
/// emailAuthenticationMethod (`emailAddress`).
pub(crate) fn list_json(h: &Held<'_>) -> Value {
    let mut value = vec![json!({
        "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
        "id": PASSWORD_METHOD_ID,
        "password": null,
        "createdDateTime": null,
    })];
    for (t, number) in h.phones {
        if let Some(n) = number {
            value.push(json!({
                "@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
                "id": t.method_id(),
                "phoneNumber": n,
                "phoneType": t.as_str(),
                "smsSignInState": if t == PhoneType::Mobile { h.sms_state } else { "notSupported" },
            }));
        }
    }
    if let Some(e) = h.email {
        value.push(json!({
            "@odata.type": "#microsoft.graph.emailAuthenticationMethod",
            "id": EMAIL_METHOD_ID,
            "emailAddress": e,
        }));
    }
    for (kind, id) in h.methods {
        match (&h.tap, kind) {
            (Some(tap), MethodKind::TemporaryAccessPass) => value.push(tap.clone()),
            _ => value.push(other_method_json(*kind, id)),
        }
    }
    json!({ "value": value })
}

/// The `methodsRegistered` value of a method kind. The values as the report gives them, listed
/// in realmjoin/realmjoin-runbooks (org/security/sync-MFA-secure-users-to-group_scheduled.md,
/// "Method classification reference": `fido2SecurityKey`, `passKeyDeviceBound`,
/// `passKeyDeviceBoundAuthenticator`, `windowsHelloForBusiness`, `microsoftAuthenticatorPush`,
/// `softwareOneTimePasscode`, `certificateBasedAuthentication`, `mobilePhone`,
/// `alternateMobilePhone`, `officePhone`, `email`, `temporaryAccessPass`, ...). Graph's v1.0
/// resource page names `fido2` as an example instead
/// (https://learn.microsoft.com/en-us/graph/api/resources/userregistrationdetails, "such as
/// `mobilePhone`, `email`, `fido2`"); clients must read both, the simulator gives the value seen
/// in real reports.
fn registered_name(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Fido2SecurityKey => "fido2SecurityKey",
        MethodKind::PasskeyAuthenticator => "passKeyDeviceBoundAuthenticator",
        MethodKind::WindowsHello => "windowsHelloForBusiness",
        MethodKind::Certificate => "certificateBasedAuthentication",
        MethodKind::Authenticator => "microsoftAuthenticatorPush",
        MethodKind::SoftwareOath => "softwareOneTimePasscode",
        MethodKind::TemporaryAccessPass => "temporaryAccessPass",
    }
}

fn phone_registered_name(t: PhoneType) -> &'static str {
    match t {
        PhoneType::Mobile => "mobilePhone",
        PhoneType::AlternateMobile => "alternateMobilePhone",
        PhoneType::Office => "officePhone",
    }
}

/// The methods the system would pick, most secure first, among the values
/// `systemPreferredAuthenticationMethods` takes (`push`, `oath`, `voiceMobile`,
/// `voiceAlternateMobile`, `voiceOffice`, `sms`, https://learn.microsoft.com/en-us/graph/api/resources/userregistrationdetails),
/// in the order system-preferred MFA ranks them (Authenticator notifications, then TOTP, then
/// telephony: https://learn.microsoft.com/en-us/entra/identity/authentication/concept-system-preferred-multifactor-authentication).
/// Only the first is reported: "the most secure authentication method".
fn system_preferred(h: &Held<'_>) -> Vec<&'static str> {
    let has = |k: MethodKind| h.methods.iter().any(|(m, _)| *m == k);
    let phone = |t: PhoneType| h.phones.iter().any(|(p, n)| *p == t && n.is_some());
    let pick = if has(MethodKind::Authenticator) {
        Some("push")
    } else if has(MethodKind::SoftwareOath) {
        Some("oath")
    } else if phone(PhoneType::Mobile) {
        Some("sms")
    } else if phone(PhoneType::AlternateMobile) {
        Some("voiceAlternateMobile")
    } else if phone(PhoneType::Office) {
        Some("voiceOffice")
    } else {
        None
    };
    pick.into_iter().collect()
}

/// The `systemPreferredAuthenticationMethod` of the beta signInPreferences resource: the first
/// of [`system_preferred`] while the tenant has it on, else `null`
/// (https://learn.microsoft.com/en-us/graph/api/resources/signinpreferences?view=graph-rest-beta).
pub(crate) fn system_preferred_one(h: &Held<'_>) -> Option<&'static str> {
    if h.system_preferred {
        system_preferred(h).first().copied()
    } else {
        None
    }
}

/// The beta-only `defaultMfaMethod` (values `none`, `mobilePhone`, `alternateMobilePhone`,
/// `officePhone`, `microsoftAuthenticatorPush`, `softwareOneTimePasscode`,
/// https://learn.microsoft.com/en-us/graph/api/resources/userregistrationdetails?view=graph-rest-beta),
/// from the user's preferred method.
fn default_mfa_method(default: Option<&str>) -> &'static str {
    match default.unwrap_or("") {
        "sms" | "voiceMobile" => "mobilePhone",
        "voiceAlternateMobile" => "alternateMobilePhone",
        "voiceOffice" => "officePhone",
        "push" => "microsoftAuthenticatorPush",
        "oath" => "softwareOneTimePasscode",
        _ => "none",
    }
}

/// One row of the registration report, with the properties of
/// https://learn.microsoft.com/en-us/graph/api/resources/userregistrationdetails (v1.0), plus
/// `defaultMfaMethod` on `/beta` only (it exists only there, same page with `?view=graph-rest-beta`):
/// - `methodsRegistered`: phones, email and the other methods (the password is not one);
/// - `isMfaRegistered` / `isMfaCapable`: "has registered a strong authentication method for
///   multifactor authentication" (every method but email, security questions and the pass; the
///   simulated policy allows every method, so capable = registered);
/// - `isPasswordlessCapable`: "a passwordless strong authentication method (including FIDO2,
///   Windows Hello for Business, and Microsoft Authenticator (Passwordless))";
/// - `isSsprRegistered` / `isSsprCapable` / `isSsprEnabled`: SSPR is on for everyone and needs
///   one method ("The number of authentication methods required to reset a password", one or
///   two, https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-howitworks);
///   email, phones and Authenticator count;
/// - `userPreferredMethodForSecondaryAuthentication`: the default method, `""` when there is
///   none (as the page's example shows for a user without methods);
/// - `isSystemPreferredAuthenticationMethodEnabled` and `systemPreferredAuthenticationMethods`;
/// - `userType` `member`, `isAdmin` false, `userDisplayName` the UPN's local part.
pub(crate) fn registration_json(h: &Held<'_>, beta: bool) -> Value {
    let mut registered: Vec<&str> = Vec::new();
    for (t, n) in h.phones {
        if n.is_some() {
            registered.push(phone_registered_name(t));
        }
    }
    if h.email.is_some() {
        registered.push("email");
    }
    let mut kinds: Vec<MethodKind> = h.methods.iter().map(|(k, _)| *k).collect();
    kinds.sort();
    kinds.dedup();
    registered.extend(kinds.iter().map(|k| registered_name(*k)));
    let has_phone = h.phones.iter().any(|(_, n)| n.is_some());
    let strong = has_phone
        || kinds
            .iter()
            .any(|k| !matches!(k, MethodKind::TemporaryAccessPass));
    let passwordless = kinds.iter().any(|k| {
        matches!(
            k,
            MethodKind::Fido2SecurityKey
                | MethodKind::PasskeyAuthenticator
                | MethodKind::WindowsHello
        )
    });
    let sspr = has_phone || h.email.is_some() || kinds.contains(&MethodKind::Authenticator);
    let display = h.upn.split('@').next().unwrap_or(h.upn);
    let mut row = Map::new();
    row.insert("id".into(), json!(h.id));
    row.insert("userPrincipalName".into(), json!(h.upn));
    row.insert("userDisplayName".into(), json!(display));
    row.insert("userType".into(), json!("member"));
    row.insert("isAdmin".into(), json!(false));
    row.insert("isSsprRegistered".into(), json!(sspr));
    row.insert("isSsprEnabled".into(), json!(true));
    row.insert("isSsprCapable".into(), json!(sspr));
    row.insert("isMfaRegistered".into(), json!(strong));
    row.insert("isMfaCapable".into(), json!(strong));
    row.insert("isPasswordlessCapable".into(), json!(passwordless));
    row.insert("lastUpdatedDateTime".into(), json!(h.updated));
    row.insert("methodsRegistered".into(), json!(registered));
    row.insert(
        "isSystemPreferredAuthenticationMethodEnabled".into(),
        json!(h.system_preferred),
    );
    row.insert(
        "systemPreferredAuthenticationMethods".into(),
        json!(if h.system_preferred {
            system_preferred(h)
        } else {
            Vec::new()
        }),
    );
    row.insert(
        "userPreferredMethodForSecondaryAuthentication".into(),
        json!(h.default_method.unwrap_or("")),
    );
    if beta {
        row.insert(
            "defaultMfaMethod".into(),
            json!(default_mfa_method(h.default_method)),
        );
    }
    Value::Object(row)
}

/// RFC 3339 (UTC, whole seconds) of a Unix time, for `lastUpdatedDateTime`.
pub(crate) fn rfc3339(unix_secs: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix_secs).unwrap_or(i64::MAX), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held<'a>(methods: &'a [(MethodKind, String)], mobile: Option<&'a str>) -> Held<'a> {
        Held {
            id: "u1",
            upn: "ada@contoso.com",
            phones: [
                (PhoneType::Mobile, mobile),
                (PhoneType::AlternateMobile, None),
                (PhoneType::Office, None),
            ],
            sms_state: "notEnabled",
            email: None,
            default_method: mobile.map(|_| "sms"),
            methods,
            tap: None,
            system_preferred: true,
            updated: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn the_report_row_follows_the_methods() {
        let m = vec![(MethodKind::WindowsHello, "w".to_string())];
        let row = registration_json(&held(&m, Some("+1 2065550100")), false);
        assert_eq!(
            row["methodsRegistered"],
            json!(["mobilePhone", "windowsHelloForBusiness"])
        );
        assert_eq!(row["isPasswordlessCapable"], true);
        assert_eq!(row["isMfaRegistered"], true);
        assert_eq!(row["systemPreferredAuthenticationMethods"], json!(["sms"]));
        assert_eq!(row["userPreferredMethodForSecondaryAuthentication"], "sms");
        assert!(row.get("defaultMfaMethod").is_none(), "beta only");
        let beta = registration_json(&held(&m, Some("+1 2065550100")), true);
        assert_eq!(beta["defaultMfaMethod"], "mobilePhone");
        let none = registration_json(&held(&[], None), false);
        assert_eq!(none["methodsRegistered"], json!([]));
        assert_eq!(none["isMfaRegistered"], false);
        assert_eq!(none["userPreferredMethodForSecondaryAuthentication"], "");
    }

    #[test]
    fn the_listing_types_every_method() {
        let m: Vec<(MethodKind, String)> = MethodKind::ALL
            .iter()
            .map(|k| (*k, format!("{k:?}")))
            .collect();
        let list = list_json(&held(&m, Some("+1 2065550100")));
        let types: Vec<&str> = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["@odata.type"].as_str().unwrap())
            .collect();
        assert_eq!(types[0], "#microsoft.graph.passwordAuthenticationMethod");
        assert_eq!(types[1], "#microsoft.graph.phoneAuthenticationMethod");
        assert_eq!(types.len(), 2 + MethodKind::ALL.len());
        assert!(types.contains(&"#microsoft.graph.x509CertificateAuthenticationMethod"));
    }

    #[test]
    fn unix_times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
