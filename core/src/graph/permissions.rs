//! Which application permission each feature needs, and what a token's `roles` claim grants.
//!
//! An app-only access token for Graph lists the application permissions the app was granted (and
//! admin-consented) in its `roles` claim. Reading it before any user is touched lets the worker and
//! the CLI say "the app lacks UserAuthMethod-Email.ReadWrite.All for the email column" once,
//! instead of a 403 for every user. Permissions per feature, least privileged first, are those of
//! the Graph reference pages (README, "Permissions").

use std::fmt;

/// A part of the product that needs its own Graph permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Reading and writing phone methods and SMS sign-in (`Mobile`, `AlternateMobile`,
    /// `OfficePhone`, `SmsSignIn` columns).
    PhoneMethods,
    /// Reading phone methods only (`export`).
    PhoneMethodsRead,
    /// Reading and writing the SSPR email method (`Email` column).
    EmailMethods,
    /// Reading the email method only (`export`).
    EmailMethodsRead,
    /// The default method (`DefaultMethod` column; beta `signInPreferences`).
    DefaultMethod,
    /// Reading the default method only (`plan`).
    DefaultMethodRead,
    /// Listing users (`export`), or reading one (`PROTECTED_USERS`).
    ListUsers,
    /// Reading a group's members (`PROTECTED_USERS` with a group).
    GroupMembers,
    /// The registration report (`readiness`: `reports/authenticationMethods/userRegistrationDetails`).
    RegistrationReport,
    /// Reading every authentication method of a user (`readiness` per user:
    /// `users/{id}/authentication/methods`).
    AllMethodsRead,
    /// Issuing Temporary Access Passes (`TapLifetimeMinutes` column, `temporaryAccessPass` in
    /// a message): reading, creating and deleting a user's pass.
    Tap,
    /// Reading a user's Temporary Access Pass only (`plan`).
    TapRead,
    /// Reading the tenant's Temporary Access Pass policy, once per run. Optional: without it
    /// the policy is learnt from Graph's answer for each user.
    TapPolicyRead,
}

impl Feature {
    pub const ALL: [Feature; 13] = [
        Feature::PhoneMethods,
        Feature::PhoneMethodsRead,
        Feature::EmailMethods,
        Feature::EmailMethodsRead,
        Feature::DefaultMethod,
        Feature::DefaultMethodRead,
        Feature::ListUsers,
        Feature::GroupMembers,
        Feature::RegistrationReport,
        Feature::AllMethodsRead,
        Feature::Tap,
        Feature::TapRead,
        Feature::TapPolicyRead,
    ];

    /// What the feature is, in an administrator's words.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::PhoneMethods => {
                "writing phone methods (mobile, alternate mobile, office, SMS sign-in)"
            }
            Feature::PhoneMethodsRead => "reading phone methods",
            Feature::EmailMethods => "writing the email method",
            Feature::EmailMethodsRead => "reading the email method",
            Feature::DefaultMethod => "setting the default method (signInPreferences)",
            Feature::DefaultMethodRead => "reading the default method (signInPreferences)",
            Feature::ListUsers => "reading users",
            Feature::GroupMembers => "reading group members",
            Feature::RegistrationReport => {
                "reading the authentication methods registration report (userRegistrationDetails)"
            }
            Feature::AllMethodsRead => "reading every authentication method of a user",
            Feature::Tap => "issuing Temporary Access Passes",
            Feature::TapRead => "reading Temporary Access Passes",
            Feature::TapPolicyRead => "reading the Temporary Access Pass policy",
        }
    }

    /// Application permissions that allow the feature; the first is the least privileged, the
    /// one to ask for.
    pub fn accepted(self) -> &'static [&'static str] {
        match self {
            Feature::PhoneMethods => &[
                "UserAuthMethod-Phone.ReadWrite.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            Feature::PhoneMethodsRead => &[
                "UserAuthMethod-Phone.Read.All",
                "UserAuthMethod-Phone.ReadWrite.All",
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            Feature::EmailMethods => &[
                "UserAuthMethod-Email.ReadWrite.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            Feature::EmailMethodsRead => &[
                "UserAuthMethod-Email.Read.All",
                "UserAuthMethod-Email.ReadWrite.All",
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            // signInPreferences has no method-specific permission.
            Feature::DefaultMethod => &["UserAuthenticationMethod.ReadWrite.All"],
            Feature::DefaultMethodRead => &[
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            Feature::ListUsers => &[
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            // https://learn.microsoft.com/en-us/graph/api/authenticationmethodsroot-list-userregistrationdetails
            // (application: AuditLog.Read.All; UserAuthenticationMethod.Read.All alone is refused,
            // microsoftgraph/microsoft-graph-docs-contrib#1852).
            Feature::RegistrationReport => &["AuditLog.Read.All"],
            // https://learn.microsoft.com/en-us/graph/api/authentication-list-methods ("acting on
            // other users", application): no method-specific permission reads every method.
            Feature::AllMethodsRead => &[
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            // https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods
            // (application: UserAuthMethod-TAP.ReadWrite.All, or the broad permission).
            Feature::Tap => &[
                "UserAuthMethod-TAP.ReadWrite.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            Feature::TapRead => &[
                "UserAuthMethod-TAP.Read.All",
                "UserAuthMethod-TAP.ReadWrite.All",
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            // https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethodconfiguration-get
            Feature::TapPolicyRead => &[
                "Policy.Read.AuthenticationMethod",
                "Policy.Read.All",
                "Policy.ReadWrite.AuthenticationMethod",
            ],
            Feature::GroupMembers => &[
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
                "Group.ReadWrite.All",
                "GroupMember.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
        }
    }

    /// The permission to grant for this feature.
    pub fn least_privileged(self) -> &'static str {
        self.accepted()[0]
    }

    /// Whether `roles` (a token's `roles` claim) allow the feature.
    pub fn granted_by(self, roles: &[String]) -> bool {
        self.accepted()
            .iter()
            .any(|p| roles.iter().any(|r| r.trim().eq_ignore_ascii_case(p)))
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl Feature {
    /// The read-only counterpart of a feature (what `plan` and `export` need).
    pub fn read_only(self) -> Feature {
        match self {
            Feature::PhoneMethods => Feature::PhoneMethodsRead,
            Feature::EmailMethods => Feature::EmailMethodsRead,
            Feature::DefaultMethod => Feature::DefaultMethodRead,
            Feature::Tap => Feature::TapRead,
            other => other,
        }
    }
}

/// The features of `wanted` that `roles` do not allow, each with the permission to grant.
pub fn missing(wanted: &[Feature], roles: &[String]) -> Vec<Feature> {
    let mut out: Vec<Feature> = wanted
        .iter()
        .copied()
        .filter(|f| !f.granted_by(roles))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The permissions to ask for so that every feature of `wanted` is allowed, least privileged:
/// one per feature, without those another one already covers.
pub fn to_request(wanted: &[Feature]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let mut features: Vec<Feature> = wanted.to_vec();
    // Features with the fewest choices first: the default method's one (broad) permission then
    // covers phones and email too.
    features.sort_by_key(|f| (f.accepted().len(), *f));
    features.dedup();
    for f in &features {
        let granted: Vec<String> = out.iter().map(|s| s.to_string()).collect();
        if !f.granted_by(&granted) {
            out.push(f.least_privileged());
        }
    }
    out
}

/// The `roles` claim of a JWT access token, read without verifying it (the client only reads its
/// own token to explain a refusal; Graph is what enforces it). `None` when the token is not a
/// readable JWT (Microsoft's tokens are opaque to clients by contract, so this is best effort).
pub fn roles_of_token(token: &str) -> Option<Vec<String>> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("roles") {
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
        ),
        // A token without `roles` is an app token with no application permission granted.
        None => claims
            .get("appid")
            .or(claims.get("azp"))
            .map(|_| Vec::new()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn least_privileged_permissions_allow_their_feature_only() {
        let phone = roles(&["UserAuthMethod-Phone.ReadWrite.All"]);
        assert!(Feature::PhoneMethods.granted_by(&phone));
        assert!(Feature::PhoneMethodsRead.granted_by(&phone));
        assert!(!Feature::EmailMethods.granted_by(&phone));
        assert!(!Feature::DefaultMethod.granted_by(&phone));
        assert!(!Feature::ListUsers.granted_by(&phone));
        let broad = roles(&["userauthenticationmethod.readwrite.all"]);
        for f in [
            Feature::PhoneMethods,
            Feature::EmailMethods,
            Feature::DefaultMethod,
        ] {
            assert!(f.granted_by(&broad), "{f}");
        }
        assert_eq!(
            missing(&[Feature::PhoneMethods, Feature::EmailMethods], &phone),
            vec![Feature::EmailMethods]
        );
    }

    #[test]
    fn what_to_request() {
        assert_eq!(
            to_request(&[Feature::PhoneMethods, Feature::EmailMethods]),
            vec![
                "UserAuthMethod-Phone.ReadWrite.All",
                "UserAuthMethod-Email.ReadWrite.All"
            ]
        );
        // The default method needs the broad permission, which covers phones and email too.
        assert_eq!(
            to_request(&[
                Feature::DefaultMethod,
                Feature::PhoneMethods,
                Feature::EmailMethods
            ]),
            vec!["UserAuthenticationMethod.ReadWrite.All"]
        );
        assert_eq!(
            to_request(&[
                Feature::ListUsers,
                Feature::PhoneMethodsRead,
                Feature::EmailMethodsRead
            ]),
            vec![
                "UserAuthMethod-Phone.Read.All",
                "UserAuthMethod-Email.Read.All",
                "User.Read.All"
            ]
        );
    }

    #[test]
    fn reads_the_roles_claim() {
        let enc = |v: serde_json::Value| {
            format!(
                "e30.{}.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
            )
        };
        assert_eq!(
            roles_of_token(&enc(serde_json::json!({"roles": ["A", "B"]}))),
            Some(roles(&["A", "B"]))
        );
        assert_eq!(
            roles_of_token(&enc(serde_json::json!({"appid": "x"}))),
            Some(vec![])
        );
        assert_eq!(roles_of_token("opaque-token"), None);
        assert_eq!(roles_of_token("a.!!!.c"), None);
    }
}
