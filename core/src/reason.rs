//! Machine reason codes (README, "Reading results") and per-row outcomes.
//!
//! Every typed error in the library maps onto exactly one [`Reason`]; the code is what lands in the
//! DLQ message attribute `reason`, in reports and in the CLI's results file.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a row or message was rejected. `as_str` is the stable machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A phone cell that is not a valid number (libphonenumber metadata), or national without a country.
    InvalidPhoneNumber,
    /// An email cell that is not a usable address.
    InvalidEmail,
    /// A user cell that is neither a UPN nor an object id, or could change a Graph URL path.
    InvalidUser,
    /// Anything else wrong with a row: bad boolean, too many fields, formula-looking cell, bad UTF-8.
    InvalidRow,
    /// A later row for a user already seen in the same file.
    DuplicateUserInFile,
    /// Graph answered 404 for the user.
    UserNotFound,
    /// The user would end with an alternate mobile and no mobile.
    AlternateRequiresMobile,
    /// The change would delete the user's default MFA method.
    DefaultMethodConflict,
    /// SMS sign-in asked for a number another user already uses for SMS sign-in.
    SmsSigninNumberNotUnique,
    /// Any other 4xx from Graph.
    GraphRejected,
    /// Transient failures (429, 5xx, network) outlasted the retry budget.
    RetriesExhausted,
    /// A queue message that is not a valid v1 request (bad JSON, wrong version, schema violation).
    InvalidMessage,
    /// The user is on the worker's protected list (`PROTECTED_USERS`): its methods are not
    /// changed through this product.
    ProtectedUser,
    /// The tenant's Temporary Access Pass policy does not allow a pass (for this user).
    TapNotAllowedByPolicy,
    /// The user already has a usable Temporary Access Pass and `forcedUpdate` is not set.
    TapExists,
    /// A fault of the deployment (missing permission or consent, unusable secret, certificate
    /// Entra refuses). Never a DLQ reason: the message goes back to the queue until it is fixed.
    ConfigurationFault,
}

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::InvalidPhoneNumber,
        Reason::InvalidEmail,
        Reason::InvalidUser,
        Reason::InvalidRow,
        Reason::DuplicateUserInFile,
        Reason::UserNotFound,
        Reason::AlternateRequiresMobile,
        Reason::DefaultMethodConflict,
        Reason::SmsSigninNumberNotUnique,
        Reason::GraphRejected,
        Reason::RetriesExhausted,
        Reason::InvalidMessage,
        Reason::ProtectedUser,
        Reason::TapNotAllowedByPolicy,
        Reason::TapExists,
        Reason::ConfigurationFault,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidPhoneNumber => "invalid_phone_number",
            Reason::InvalidEmail => "invalid_email",
            Reason::InvalidUser => "invalid_user",
            Reason::InvalidRow => "invalid_row",
            Reason::DuplicateUserInFile => "duplicate_user_in_file",
            Reason::UserNotFound => "user_not_found",
            Reason::AlternateRequiresMobile => "alternate_requires_mobile",
            Reason::DefaultMethodConflict => "default_method_conflict",
            Reason::SmsSigninNumberNotUnique => "sms_signin_number_not_unique",
            Reason::GraphRejected => "graph_rejected",
            Reason::RetriesExhausted => "retries_exhausted",
            Reason::InvalidMessage => "invalid_message",
            Reason::ProtectedUser => "protected_user",
            Reason::TapNotAllowedByPolicy => "tap_not_allowed_by_policy",
            Reason::TapExists => "tap_exists",
            Reason::ConfigurationFault => "configuration_fault",
        }
    }

    pub fn parse(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// What to do about a row dead-lettered for this reason: the "what to do" column of the
    /// README's DLQ table (its Markdown backticks left out; `core/tests/readme_reasons.rs` keeps
    /// the two equal). [`Reason::ConfigurationFault`] never reaches the DLQ; its sentence follows
    /// the README's "When the app is not allowed to".
    pub fn what_to_do(self) -> &'static str {
        match self {
            Reason::InvalidPhoneNumber => "fix the cell or set DefaultCountry; re-upload",
            Reason::InvalidEmail => "fix the cell; re-upload",
            Reason::InvalidUser => "fix the UPN; re-upload",
            Reason::InvalidRow => "fix the row or header (or add a column mapping); re-upload",
            Reason::DuplicateUserInFile => {
                "merge the rows; re-upload the corrected row if the later one was meant"
            }
            Reason::UserNotFound => {
                "check the UPN or object id (not yet created or synced?); re-drive once the user exists"
            }
            Reason::AlternateRequiresMobile => "add a mobile, or leave out the alternate mobile",
            Reason::DefaultMethodConflict => {
                "change the user's default method first (DefaultMethod column or Entra), then re-drive"
            }
            Reason::SmsSigninNumberNotUnique => {
                "use another number, or disable SMS sign-in for the other user; then re-drive"
            }
            Reason::GraphRejected => "read detail",
            Reason::RetriesExhausted => {
                "re-drive when Graph is healthy; if throttling, lower WorkerMaximumConcurrency"
            }
            Reason::InvalidMessage => "fix the producer; check messages against the schema",
            Reason::ProtectedUser => "change such accounts by hand, on purpose",
            Reason::TapNotAllowedByPolicy => {
                "enable Temporary Access Pass in the authentication methods policy and include the user; then re-drive"
            }
            Reason::TapExists => {
                "the user has a usable pass: set ForcedUpdate to replace it, or let it expire"
            }
            Reason::ConfigurationFault => {
                "grant the missing permission or admin consent, or fix the credentials (secret, certificate, client id, tenant); the queued users then complete by themselves"
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one user/row when it did not end in the DLQ (README, "Reading results").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    SkippedExists,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Deleted,
        Outcome::Unchanged,
        Outcome::SkippedExists,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Deleted => "deleted",
            Outcome::Unchanged => "unchanged",
            Outcome::SkippedExists => "skipped_exists",
        }
    }

    pub fn parse(code: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == code)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(Reason::parse("nope"), None);
    }
}
