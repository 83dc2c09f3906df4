//! Maps a Graph method and path (relative to `/v1.0` or `/beta`) onto an operation.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use crate::response::GraphError;

/// The Graph API version a request addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    pub(crate) fn parse(segment: &str) -> Option<ApiVersion> {
        match segment {
            "v1.0" => Some(ApiVersion::V1),
            "beta" => Some(ApiVersion::Beta),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// One Graph operation. `user` is the decoded `{id}` path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    ListUsers,
    /// `GET /users/$count` (needs `ConsistencyLevel: eventual`).
    CountUsers,
    /// `GET /users/{id}/authentication/methods`: every method, listing only.
    ListMethods {
        user: String,
    },
    /// `GET /reports/authenticationMethods/userRegistrationDetails`, paged.
    RegistrationDetails,
    GetUser {
        user: String,
    },
    /// `GET /groups/{id}/members` or `/transitiveMembers` (optionally cast to
    /// `/microsoft.graph.user`).
    GroupMembers {
        group: String,
        transitive: bool,
    },
    ListPhones {
        user: String,
    },
    CreatePhone {
        user: String,
    },
    GetPhone {
        user: String,
        method: String,
    },
    UpdatePhone {
        user: String,
        method: String,
    },
    DeletePhone {
        user: String,
        method: String,
    },
    SmsSignIn {
        user: String,
        method: String,
        enable: bool,
    },
    ListEmails {
        user: String,
    },
    CreateEmail {
        user: String,
    },
    GetEmail {
        user: String,
        method: String,
    },
    UpdateEmail {
        user: String,
        method: String,
    },
    DeleteEmail {
        user: String,
        method: String,
    },
    GetPreferences {
        user: String,
    },
    UpdatePreferences {
        user: String,
    },
    ListTaps {
        user: String,
    },
    CreateTap {
        user: String,
    },
    GetTap {
        user: String,
        method: String,
    },
    DeleteTap {
        user: String,
        method: String,
    },
    /// `GET /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass`.
    GetTapPolicy,
}

/// How Graph words a 403 for a missing permission: authentication-method paths and directory
/// paths answer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeniedShape {
    /// `accessDenied`, "Request Authorization failed" (`/users/{id}/authentication/...`).
    AuthenticationMethods,
    /// `Authorization_RequestDenied`, "Insufficient privileges to complete the operation."
    /// (`/users`, `/users/{id}`).
    Directory,
    /// `Authentication_MSGraphPermissionMissing`, "Calling principal does not have required
    /// MSGraph permissions AuditLog.Read.All" (the registration report).
    Reports,
}

// Application permissions per operation, least privileged first, as each reference page's
// "Permissions" table lists them:
// - phone methods: https://learn.microsoft.com/en-us/graph/api/authentication-list-phonemethods,
//   .../authentication-post-phonemethods, .../phoneauthenticationmethod-update,
//   .../phoneauthenticationmethod-delete, .../phoneauthenticationmethod-enablesmssignin and
//   -disablesmssignin (read: UserAuthMethod-Phone.Read.All; write:
//   UserAuthMethod-Phone.ReadWrite.All; or the broad UserAuthenticationMethod.* permissions);
// - email methods: .../authentication-list-emailmethods, .../authentication-post-emailmethods,
//   .../emailauthenticationmethod-update, -delete (UserAuthMethod-Email.*);
// - sign-in preferences (beta): .../authentication-get-signinpreferences and -update
//   (UserAuthenticationMethod.Read.All / ReadWrite.All only);
// - users: https://learn.microsoft.com/en-us/graph/api/user-list and user-get (User.Read.All,
//   User.ReadWrite.All, Directory.Read.All, Directory.ReadWrite.All).
const PHONE_READ: &[&str] = &[
    "UserAuthMethod-Phone.Read.All",
    "UserAuthMethod-Phone.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const PHONE_WRITE: &[&str] = &[
    "UserAuthMethod-Phone.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const EMAIL_READ: &[&str] = &[
    "UserAuthMethod-Email.Read.All",
    "UserAuthMethod-Email.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const EMAIL_WRITE: &[&str] = &[
    "UserAuthMethod-Email.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const PREFERENCES_READ: &[&str] = &[
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const PREFERENCES_WRITE: &[&str] = &["UserAuthenticationMethod.ReadWrite.All"];
// Temporary Access Pass methods, application permissions:
// - read: https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethod-get
//   and .../authentication-list-temporaryaccesspassmethods (UserAuthMethod-TAP.Read.All least
//   privileged; UserAuthenticationMethod.ReadWrite.All, UserAuthenticationMethod.Read.All,
//   UserAuthMethod-TAP.ReadWrite.All);
// - write: https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethod-delete
//   (UserAuthenticationMethod.ReadWrite.All, UserAuthMethod-TAP.ReadWrite.All) and
//   .../authentication-post-temporaryaccesspassmethods. The create page first listed
//   UserAuthenticationMethod.ReadWrite.All alone; its generated table
//   (microsoftgraph/microsoft-graph-docs-contrib
//   api-reference/v1.0/includes/permissions/authentication-post-temporaryaccesspassmethods-permissions.md)
//   now copies the read table, Read.All permissions included. That a read-only permission
//   creates passes is not believed: only the two ReadWrite permissions are accepted
//   (assumption, the stricter reading).
const TAP_READ: &[&str] = &[
    "UserAuthMethod-TAP.Read.All",
    "UserAuthMethod-TAP.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const TAP_WRITE: &[&str] = &[
    "UserAuthMethod-TAP.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
// The Temporary Access Pass policy, application permissions:
// https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethodconfiguration-get
// lists Policy.Read.AuthenticationMethod (least privileged) and
// Policy.ReadWrite.AuthenticationMethod; its earlier version (microsoftgraph/microsoft-graph-docs-contrib
// api-reference/v1.0/api/temporaryaccesspassauthenticationmethodconfiguration-get.md) listed
// Policy.Read.All and Policy.ReadWrite.AuthenticationMethod, "Policy.Read.All is supported for
// both app and delegated permissions" (microsoftgraph/microsoft-graph-docs PR #19237), and the
// whole policy's page still lists it (.../authenticationmethodspolicy-get). All three are
// accepted. A field report of 403s with Policy.Read.All alone (microsoft/EntraExporter PR #114)
// concerns delegated scopes.
const TAP_POLICY_READ: &[&str] = &[
    "Policy.Read.AuthenticationMethod",
    "Policy.ReadWrite.AuthenticationMethod",
    "Policy.Read.All",
];
// Group members: https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers
// (application: GroupMember.Read.All least privileged; Group.Read.All, Directory.Read.All and
// the ReadWrite ones also allow it).
const GROUP_MEMBERS_READ: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "Directory.ReadWrite.All",
];
// Every method: https://learn.microsoft.com/en-us/graph/api/authentication-list-methods,
// "Permissions acting on other users", application: UserAuthenticationMethod.Read.All (least
// privileged), UserAuthenticationMethod.ReadWrite.All. The method-specific permissions
// (UserAuthMethod-Phone.*, ...) are not in that table.
const METHODS_READ: &[&str] = &[
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
// The registration report: https://learn.microsoft.com/en-us/graph/api/authenticationmethodsroot-list-userregistrationdetails
// (application: AuditLog.Read.All). An older version of the page listed
// UserAuthenticationMethod.Read.All too; with only that Graph answers 403 "Calling principal does
// not have required MSGraph permissions AuditLog.Read.All"
// (microsoftgraph/microsoft-graph-docs-contrib#1852): AuditLog.Read.All alone allows it.
const REPORT_READ: &[&str] = &["AuditLog.Read.All"];
const USERS_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

impl Route {
    /// The application permissions of which the token's `roles` must hold one, and how a
    /// refusal is worded.
    pub(crate) fn permissions(&self) -> (&'static [&'static str], DeniedShape) {
        use DeniedShape::{AuthenticationMethods as Auth, Directory as Dir};
        match self {
            Route::ListUsers | Route::CountUsers | Route::GetUser { .. } => (USERS_READ, Dir),
            Route::ListMethods { .. } => (METHODS_READ, Auth),
            Route::RegistrationDetails => (REPORT_READ, DeniedShape::Reports),
            Route::GroupMembers { .. } => (GROUP_MEMBERS_READ, Dir),
            Route::ListPhones { .. } | Route::GetPhone { .. } => (PHONE_READ, Auth),
            Route::CreatePhone { .. }
            | Route::UpdatePhone { .. }
            | Route::DeletePhone { .. }
            | Route::SmsSignIn { .. } => (PHONE_WRITE, Auth),
            Route::ListEmails { .. } | Route::GetEmail { .. } => (EMAIL_READ, Auth),
            Route::CreateEmail { .. } | Route::UpdateEmail { .. } | Route::DeleteEmail { .. } => {
                (EMAIL_WRITE, Auth)
            }
            Route::GetPreferences { .. } => (PREFERENCES_READ, Auth),
            Route::UpdatePreferences { .. } => (PREFERENCES_WRITE, Auth),
            Route::ListTaps { .. } | Route::GetTap { .. } => (TAP_READ, Auth),
            Route::CreateTap { .. } | Route::DeleteTap { .. } => (TAP_WRITE, Auth),
            // No source shows the policy's 403: the authentication methods service's shape is
            // assumed (the policy and the methods are served together, the "Converged
            // UserCredentialPolicy" of the create's refusal).
            Route::GetTapPolicy => (TAP_POLICY_READ, Auth),
        }
    }

    /// Whether the request goes to the identity and access reports service, which has its own
    /// budget instead of the resource units (see [`crate::SimConfig::report_requests_per_window`]).
    pub(crate) fn is_report(&self) -> bool {
        matches!(self, Route::RegistrationDetails)
    }

    /// Whether the request is charged as a write.
    pub(crate) fn is_write(&self) -> bool {
        !matches!(
            self,
            Route::ListUsers
                | Route::CountUsers
                | Route::ListMethods { .. }
                | Route::RegistrationDetails
                | Route::GetUser { .. }
                | Route::GroupMembers { .. }
                | Route::ListPhones { .. }
                | Route::GetPhone { .. }
                | Route::ListEmails { .. }
                | Route::GetEmail { .. }
                | Route::GetPreferences { .. }
                | Route::ListTaps { .. }
                | Route::GetTap { .. }
                | Route::GetTapPolicy
        )
    }
}

/// The TAP policy's key: Graph's pages write it `TemporaryAccessPass`
/// (https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethodconfiguration-update)
/// and `temporaryAccessPass` (...-get, ...-delete), so case does not matter.
fn is_tap_config(id: &str) -> bool {
    id.eq_ignore_ascii_case("TemporaryAccessPass")
}

/// `authenticationMethodConfigurations('TemporaryAccessPass')`, the OData key form (the
/// `includeTargets@odata.context` of the get page's example:
/// `.../authenticationMethodConfigurations('TemporaryAccessPass')/...`).
fn is_tap_config_key(segment: &str) -> bool {
    segment
        .strip_prefix("authenticationMethodConfigurations(")
        .and_then(|r| r.strip_suffix(')'))
        .map(|k| k.trim_matches('\''))
        .is_some_and(is_tap_config)
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// Parses `path` (without the version prefix and without the query), e.g.
/// `users/a%40b.com/authentication/phoneMethods`.
pub(crate) fn parse(version: ApiVersion, method: &Method, path: &str) -> Result<Route, GraphError> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = method.clone();
    let not_allowed = || Err(GraphError::method_not_allowed());
    let user = |s: &str| s.to_string();
    match seg.as_slice() {
        ["users"] => match m {
            Method::GET => Ok(Route::ListUsers),
            _ => not_allowed(),
        },
        ["users", "$count"] => match m {
            Method::GET => Ok(Route::CountUsers),
            _ => not_allowed(),
        },
        ["reports", "authenticationMethods", "userRegistrationDetails"] => match m {
            Method::GET => Ok(Route::RegistrationDetails),
            _ => not_allowed(),
        },
        ["users", u, "authentication", "methods"] => match m {
            Method::GET => Ok(Route::ListMethods { user: user(u) }),
            _ => not_allowed(),
        },
        ["groups", g, rel @ ("members" | "transitiveMembers")]
        | ["groups", g, rel @ ("members" | "transitiveMembers"), "microsoft.graph.user"] => match m
        {
            Method::GET => Ok(Route::GroupMembers {
                group: g.to_string(),
                transitive: *rel == "transitiveMembers",
            }),
            _ => not_allowed(),
        },
        ["users", u] => match m {
            Method::GET => Ok(Route::GetUser { user: user(u) }),
            _ => not_allowed(),
        },
        ["users", u, "authentication", "phoneMethods"] => match m {
            Method::GET => Ok(Route::ListPhones { user: user(u) }),
            Method::POST => Ok(Route::CreatePhone { user: user(u) }),
            _ => not_allowed(),
        },
        ["users", u, "authentication", "phoneMethods", id] => {
            let (user, method) = (user(u), id.to_string());
            match m {
                Method::GET => Ok(Route::GetPhone { user, method }),
                Method::PATCH => Ok(Route::UpdatePhone { user, method }),
                Method::DELETE => Ok(Route::DeletePhone { user, method }),
                _ => not_allowed(),
            }
        }
        ["users", u, "authentication", "phoneMethods", id, action @ ("enableSmsSignIn" | "disableSmsSignIn")] => {
            match m {
                Method::POST => Ok(Route::SmsSignIn {
                    user: user(u),
                    method: id.to_string(),
                    enable: *action == "enableSmsSignIn",
                }),
                _ => not_allowed(),
            }
        }
        ["users", u, "authentication", "emailMethods"] => match m {
            Method::GET => Ok(Route::ListEmails { user: user(u) }),
            Method::POST => Ok(Route::CreateEmail { user: user(u) }),
            _ => not_allowed(),
        },
        ["users", u, "authentication", "emailMethods", id] => {
            let (user, method) = (user(u), id.to_string());
            match m {
                Method::GET => Ok(Route::GetEmail { user, method }),
                Method::PATCH => Ok(Route::UpdateEmail { user, method }),
                Method::DELETE => Ok(Route::DeleteEmail { user, method }),
                _ => not_allowed(),
            }
        }
        ["users", u, "authentication", "temporaryAccessPassMethods"] => match m {
            Method::GET => Ok(Route::ListTaps { user: user(u) }),
            Method::POST => Ok(Route::CreateTap { user: user(u) }),
            _ => not_allowed(),
        },
        // No update: the resource has List, Create, Get and Delete only
        // (https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethod).
        ["users", u, "authentication", "temporaryAccessPassMethods", id] => {
            let (user, method) = (user(u), id.to_string());
            match m {
                Method::GET => Ok(Route::GetTap { user, method }),
                Method::DELETE => Ok(Route::DeleteTap { user, method }),
                _ => not_allowed(),
            }
        }
        ["policies", "authenticationMethodsPolicy", "authenticationMethodConfigurations", id]
            if is_tap_config(id) =>
        {
            match m {
                Method::GET => Ok(Route::GetTapPolicy),
                _ => not_allowed(),
            }
        }
        ["policies", "authenticationMethodsPolicy", key] if is_tap_config_key(key) => match m {
            Method::GET => Ok(Route::GetTapPolicy),
            _ => not_allowed(),
        },
        ["users", u, "authentication", "signInPreferences"] if version == ApiVersion::Beta => {
            match m {
                Method::GET => Ok(Route::GetPreferences { user: user(u) }),
                Method::PATCH => Ok(Route::UpdatePreferences { user: user(u) }),
                _ => not_allowed(),
            }
        }
        _ => Err(GraphError::segment_not_found(
            seg.last().copied().unwrap_or(""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes_user_ids() {
        let r = parse(
            ApiVersion::V1,
            &Method::GET,
            "users/o%27neil%23EXT%23%40x.com/authentication/phoneMethods",
        )
        .expect("route");
        assert_eq!(
            r,
            Route::ListPhones {
                user: "o'neil#EXT#@x.com".into()
            }
        );
        assert!(!r.is_write());
    }

    #[test]
    fn least_privileged_permissions_per_route() {
        let phone = parse(
            ApiVersion::V1,
            &Method::POST,
            "users/a@x.com/authentication/phoneMethods",
        )
        .expect("route");
        let (roles, shape) = phone.permissions();
        assert!(roles.contains(&"UserAuthMethod-Phone.ReadWrite.All"));
        assert!(!roles.contains(&"UserAuthMethod-Phone.Read.All"));
        assert!(!roles.contains(&"UserAuthMethod-Email.ReadWrite.All"));
        assert_eq!(shape, DeniedShape::AuthenticationMethods);
        let (roles, shape) = parse(ApiVersion::V1, &Method::GET, "users")
            .expect("users")
            .permissions();
        assert_eq!(roles, USERS_READ);
        assert_eq!(shape, DeniedShape::Directory);
        let prefs = parse(
            ApiVersion::Beta,
            &Method::PATCH,
            "users/a@x.com/authentication/signInPreferences",
        )
        .expect("prefs");
        assert_eq!(
            prefs.permissions().0,
            &["UserAuthenticationMethod.ReadWrite.All"]
        );
    }

    #[test]
    fn every_method_and_the_report_are_reads_with_their_own_permissions() {
        let r = parse(
            ApiVersion::V1,
            &Method::GET,
            "users/a%40x.com/authentication/methods",
        )
        .expect("methods");
        assert_eq!(
            r,
            Route::ListMethods {
                user: "a@x.com".into()
            }
        );
        assert_eq!(r.permissions().0, METHODS_READ);
        assert!(!r.is_write() && !r.is_report());
        let report = parse(
            ApiVersion::V1,
            &Method::GET,
            "reports/authenticationMethods/userRegistrationDetails",
        )
        .expect("report");
        assert_eq!(report.permissions(), (REPORT_READ, DeniedShape::Reports));
        assert!(report.is_report() && !report.is_write());
        assert_eq!(
            parse(ApiVersion::V1, &Method::GET, "users/$count").expect("count"),
            Route::CountUsers
        );
    }

    #[test]
    fn sign_in_preferences_is_beta_only() {
        let path = "users/a@x.com/authentication/signInPreferences";
        assert!(parse(ApiVersion::V1, &Method::PATCH, path).is_err());
        let r = parse(ApiVersion::Beta, &Method::PATCH, path).expect("beta");
        assert!(r.is_write());
    }

    #[test]
    fn tap_routes_reads_writes_and_permissions() {
        let list = "users/a@x.com/authentication/temporaryAccessPassMethods";
        let r = parse(ApiVersion::V1, &Method::GET, list).expect("list");
        assert!(!r.is_write());
        assert!(r.permissions().0.contains(&"UserAuthMethod-TAP.Read.All"));
        let r = parse(ApiVersion::Beta, &Method::POST, list).expect("create");
        assert!(r.is_write());
        assert!(!r.permissions().0.contains(&"UserAuthMethod-TAP.Read.All"));
        assert!(r
            .permissions()
            .0
            .contains(&"UserAuthMethod-TAP.ReadWrite.All"));
        let one = format!("{list}/m1");
        assert!(parse(ApiVersion::V1, &Method::DELETE, &one)
            .expect("delete")
            .is_write());
        assert_eq!(
            parse(ApiVersion::V1, &Method::PATCH, &one)
                .expect_err("no update")
                .status
                .as_u16(),
            405
        );
        for path in [
            "policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass",
            "policies/authenticationMethodsPolicy/authenticationMethodConfigurations/temporaryAccessPass",
            "policies/authenticationMethodsPolicy/authenticationMethodConfigurations('TemporaryAccessPass')",
        ] {
            let r = parse(ApiVersion::V1, &Method::GET, path).expect(path);
            assert_eq!(r, Route::GetTapPolicy);
            assert!(!r.is_write());
            assert_eq!(r.permissions().0, TAP_POLICY_READ);
        }
        assert!(parse(
            ApiVersion::V1,
            &Method::GET,
            "policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Sms"
        )
        .is_err());
    }

    #[test]
    fn sms_actions_and_wrong_methods() {
        let r = parse(
            ApiVersion::V1,
            &Method::POST,
            "users/a@x.com/authentication/phoneMethods/m/disableSmsSignIn",
        )
        .expect("route");
        assert!(matches!(r, Route::SmsSignIn { enable: false, .. }));
        let e = parse(
            ApiVersion::V1,
            &Method::PUT,
            "users/a@x.com/authentication/phoneMethods",
        )
        .expect_err("PUT");
        assert_eq!(e.status.as_u16(), 405);
    }
}
