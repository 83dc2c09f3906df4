//! Typed Graph failures, each mapping onto exactly one [`Reason`].

use crate::graph::permissions::Feature;
use crate::mask::mask_numbers_in_text;
use crate::reason::Reason;

/// Why the token endpoint did not give a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The identity platform refused the request (wrong tenant, unknown app, certificate not
    /// registered, ...). `description` is the AADSTS text; it never holds a secret.
    #[error("the token endpoint refused the request ({status} {error}): {description}")]
    Rejected {
        status: u16,
        error: String,
        description: String,
    },
    /// 429/5xx/network failures outlasted the token retry budget.
    #[error("the token endpoint kept failing ({attempts} attempts): {last}")]
    Unavailable { attempts: u32, last: String },
    /// A 2xx answer without a usable `access_token` / `expires_in`.
    #[error("the token endpoint answered something unusable: {0}")]
    InvalidResponse(String),
    /// The client assertion could not be signed.
    #[error("cannot sign the client assertion: {0}")]
    Assertion(String),
}

/// A fault of the deployment, not of a user: the same for every user until an administrator fixes
/// it. No user is dead-lettered for it; the worker returns its batch to the queue and the CLI
/// stops with exit code 2 (README, "When the app is not allowed to").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFault {
    /// The token's `roles` lack the permission of a feature in use, or Graph answered 403.
    #[error("the app is not allowed {what}: grant the application permission {grant} to the app registration and admin consent for it (Graph: {graph})")]
    MissingPermission {
        /// What was refused ("to read phone methods").
        what: String,
        /// The least privileged permission that allows it.
        grant: &'static str,
        /// Graph's code and message, or "the token's roles claim".
        graph: String,
    },
    /// The tenant lacks the licence a feature needs (the registration report needs Microsoft
    /// Entra ID P1 or P2), whatever the app is granted.
    #[error(
        "the tenant is not licensed {what}: it needs Microsoft Entra ID P1 or P2 (Graph: {graph})"
    )]
    NotLicensed { what: String, graph: String },
    /// The token endpoint refused the app's credentials.
    #[error(
        "the token endpoint refused the app's credentials ({error}{code}): {hint} [{description}]"
    )]
    Credentials {
        error: String,
        /// ` AADSTS...` when the answer carried one.
        code: String,
        hint: String,
        description: String,
    },
    /// The credentials secret cannot be read or used.
    #[error("the credentials secret is unusable: {0}")]
    Secret(String),
    /// A request asks for a Temporary Access Pass and the deployment has nowhere to deliver
    /// it (`PASS_BUCKET` / `PASS_KMS_KEY_ARN` unset, or the delivery failed for good).
    #[error("Temporary Access Passes cannot be delivered: {0}")]
    PassDelivery(String),
    /// `PROTECTED_USERS` could not be resolved: no user is touched until it can be.
    #[error("the protected users (PROTECTED_USERS) cannot be looked up: {0}")]
    ProtectedUsers(String),
}

impl ConfigFault {
    /// A feature the token's `roles` do not allow.
    pub fn missing_feature(feature: Feature, roles_source: &str) -> ConfigFault {
        ConfigFault::MissingPermission {
            what: feature.describe().to_string(),
            grant: feature.least_privileged(),
            graph: roles_source.to_string(),
        }
    }

    /// A short, stable name of the fault kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigFault::MissingPermission { .. } => "missing_permission",
            ConfigFault::NotLicensed { .. } => "not_licensed",
            ConfigFault::Credentials { .. } => "credentials_refused",
            ConfigFault::Secret(_) => "secret_unusable",
            ConfigFault::ProtectedUsers(_) => "protected_users_unresolved",
            ConfigFault::PassDelivery(_) => "pass_delivery",
        }
    }
}

impl From<TokenError> for GraphError {
    /// A refusal by the token endpoint (or a key that cannot sign) is a configuration fault;
    /// the endpoint being unavailable is transient.
    fn from(e: TokenError) -> GraphError {
        match e {
            TokenError::Rejected {
                status,
                error,
                description,
            } => {
                let code = crate::graph::aadsts::code_in(&description);
                let hint = code
                    .and_then(crate::graph::aadsts::hint)
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "HTTP {status}: check the app registration and the credentials secret"
                        )
                    });
                GraphError::Configuration(ConfigFault::Credentials {
                    error,
                    code: code.map(|c| format!(" AADSTS{c}")).unwrap_or_default(),
                    hint,
                    description: mask_numbers_in_text(&description),
                })
            }
            TokenError::Assertion(why) => GraphError::Configuration(ConfigFault::Secret(format!(
                "the private key cannot sign the client assertion: {why}"
            ))),
            other => GraphError::Token(other),
        }
    }
}

/// A Graph call that did not succeed. `Display` is safe for logs and DLQ details: Graph's
/// messages are kept with phone numbers masked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// 404 for the user (`Request_ResourceNotFound`, or any 404 on a user-level path).
    #[error("user not found: {message}")]
    UserNotFound { message: String },
    /// 400 whose message names the default method: it cannot be deleted.
    #[error("the method is the user's default sign-in method: {message}")]
    DefaultMethodConflict { message: String },
    /// `phoneNumberNotUnique`: the number is used for SMS sign-in by another user.
    #[error("the number is already used for SMS sign-in by another user: {message}")]
    SmsSigninNumberNotUnique { message: String },
    /// 404 `itemNotFound` on a method path: the method is not there (raced or already deleted).
    /// `after_retry` as for [`GraphError::MethodAlreadyExists`].
    #[error("method not found ({code}): {message}")]
    MethodNotFound {
        code: String,
        message: String,
        after_retry: bool,
    },
    /// 400/409 saying the method type already exists. `after_retry` is true when an earlier
    /// attempt of the same call failed transiently and may have been applied.
    #[error("method already exists ({code}): {message}")]
    MethodAlreadyExists {
        code: String,
        message: String,
        after_retry: bool,
    },
    /// 400 on a Temporary Access Pass create: the tenant's policy does not allow a pass for this
    /// user (the method is off, or the user is outside its targets).
    #[error("the Temporary Access Pass policy does not allow a pass for this user: {message}")]
    TapNotAllowedByPolicy { message: String },
    /// A user id that cannot be put in a Graph URL path.
    #[error("user id cannot be used in a Graph path: {0}")]
    InvalidUser(String),
    /// Any other 4xx (and non-retryable 5xx such as 501).
    #[error("Graph rejected the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// 429/5xx/timeouts/connection errors outlasted the retry budget.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    /// No token could be had for now (the endpoint kept failing); retried later by the queue.
    #[error("no access token: {0}")]
    Token(TokenError),
    /// A fault of the deployment (permission, consent, credentials): see [`ConfigFault`].
    #[error("configuration fault: {0}")]
    Configuration(ConfigFault),
    /// A 2xx answer whose body could not be read.
    #[error("unreadable Graph response: {0}")]
    InvalidResponse(String),
}

impl GraphError {
    /// The machine reason this failure is reported with.
    pub fn reason(&self) -> Reason {
        match self {
            GraphError::UserNotFound { .. } => Reason::UserNotFound,
            GraphError::DefaultMethodConflict { .. } => Reason::DefaultMethodConflict,
            GraphError::SmsSigninNumberNotUnique { .. } => Reason::SmsSigninNumberNotUnique,
            GraphError::TapNotAllowedByPolicy { .. } => Reason::TapNotAllowedByPolicy,
            GraphError::InvalidUser(_) => Reason::InvalidUser,
            GraphError::MethodNotFound { .. }
            | GraphError::MethodAlreadyExists { .. }
            | GraphError::Rejected { .. }
            | GraphError::InvalidResponse(_) => Reason::GraphRejected,
            GraphError::RetriesExhausted { .. } | GraphError::Token(_) => Reason::RetriesExhausted,
            GraphError::Configuration(_) => Reason::ConfigurationFault,
        }
    }

    /// True when trying the same request later may succeed (throttling, outages, token
    /// problems); false when Graph said no for this request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GraphError::RetriesExhausted { .. } | GraphError::Token(_)
        )
    }

    /// The configuration fault, when this is one.
    pub fn configuration(&self) -> Option<&ConfigFault> {
        match self {
            GraphError::Configuration(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_transience() {
        let e = GraphError::RetriesExhausted {
            attempts: 6,
            last: "429".into(),
        };
        assert_eq!(e.reason(), Reason::RetriesExhausted);
        assert!(e.is_transient());
        let e = GraphError::UserNotFound {
            message: "x".into(),
        };
        assert_eq!(e.reason(), Reason::UserNotFound);
        assert!(!e.is_transient());
        let e = GraphError::Token(TokenError::Unavailable {
            attempts: 3,
            last: "503".into(),
        });
        assert!(e.is_transient());
        assert_eq!(
            GraphError::SmsSigninNumberNotUnique {
                message: String::new()
            }
            .reason(),
            Reason::SmsSigninNumberNotUnique
        );
        assert_eq!(
            GraphError::DefaultMethodConflict {
                message: String::new()
            }
            .reason(),
            Reason::DefaultMethodConflict
        );
        assert_eq!(
            GraphError::Rejected {
                status: 403,
                code: "x".into(),
                message: String::new()
            }
            .reason(),
            Reason::GraphRejected
        );
    }
}
