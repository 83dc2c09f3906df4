//! Typed Graph failures, each mapping onto exactly one [`Reason`].

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
    /// No token could be had; not the user's fault, retried later by the queue.
    #[error("no access token: {0}")]
    Token(#[from] TokenError),
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
            GraphError::InvalidUser(_) => Reason::InvalidUser,
            GraphError::MethodNotFound { .. }
            | GraphError::MethodAlreadyExists { .. }
            | GraphError::Rejected { .. }
            | GraphError::InvalidResponse(_) => Reason::GraphRejected,
            GraphError::RetriesExhausted { .. } | GraphError::Token(_) => Reason::RetriesExhausted,
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
}

/// Masks phone-number-like digit runs (7+ digits, spaces or dashes allowed between) in free text
/// such as Graph error messages: `+1 5555551234` -> `+1 555****234`.
pub fn mask_numbers_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Extend over digits and single separators between digits.
        let mut j = i + 1;
        let mut digits = usize::from(chars[i].is_ascii_digit());
        let mut end = j;
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (c == ' ' || c == '-' || c == '.')
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        let run: String = chars[i..end].iter().collect();
        if digits >= 7 {
            out.push_str(&mask_run(&run));
        } else {
            out.push_str(&run);
        }
        i = end;
    }
    out
}

fn mask_run(run: &str) -> String {
    if run.starts_with('+') && run.contains(' ') {
        return crate::mask::mask_phone(run);
    }
    let digits: Vec<char> = run.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[n - 3..].iter().collect();
    let plus = if run.starts_with('+') { "+" } else { "" };
    format!("{plus}{head}{}{tail}", "*".repeat(n - 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_numbers_but_not_short_codes() {
        let m = mask_numbers_in_text("invalidPhoneNumber: '+1 5555551234' rejected (code 400)");
        assert!(m.contains("+1 555****234"), "{m}");
        assert!(!m.contains("5555551234"));
        assert!(m.contains("code 400"));
        let m = mask_numbers_in_text("number +31612345678 and 0612-345-678");
        assert!(
            !m.contains("31612345678") && !m.contains("0612-345-678"),
            "{m}"
        );
        assert_eq!(mask_numbers_in_text("no digits here"), "no digits here");
    }

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
