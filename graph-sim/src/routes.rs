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
    GetUser {
        user: String,
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
}

impl Route {
    /// Whether the request is charged as a write.
    pub(crate) fn is_write(&self) -> bool {
        !matches!(
            self,
            Route::ListUsers
                | Route::GetUser { .. }
                | Route::ListPhones { .. }
                | Route::GetPhone { .. }
                | Route::ListEmails { .. }
                | Route::GetEmail { .. }
                | Route::GetPreferences { .. }
        )
    }
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
    fn sign_in_preferences_is_beta_only() {
        let path = "users/a@x.com/authentication/signInPreferences";
        assert!(parse(ApiVersion::V1, &Method::PATCH, path).is_err());
        let r = parse(ApiVersion::Beta, &Method::PATCH, path).expect("beta");
        assert!(r.is_write());
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
