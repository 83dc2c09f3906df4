//! One CSV row -> the desired state of one user (a v1 request without its job), or the reason
//! it cannot be used, naming the row and the column.

use crate::csv::{Field, Layout, RawRow, RowError};
use crate::message::{DefaultMethod, Job, Methods, Policy, Request, SmsSignIn, MESSAGE_VERSION};
use crate::reason::Reason;
use crate::tap::TapRequest;

/// What validation needs besides the row.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Country for national numbers (`DEFAULT_COUNTRY`); none means national numbers are refused.
    pub default_country: Option<phonenumber::country::Id>,
}

/// A row that passed validation, with normalised values.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidRow {
    pub row: u64,
    pub user: String,
    pub methods: Methods,
    pub policy: Policy,
    pub sms_sign_in: Option<SmsSignIn>,
    pub default_method: Option<DefaultMethod>,
    pub temporary_access_pass: Option<TapRequest>,
}

impl ValidRow {
    /// Case-insensitive key for `duplicate_user_in_file`.
    pub fn user_key(&self) -> String {
        crate::user::user_key(&self.user)
    }

    /// The mobile number this row asks SMS sign-in for (for `sms_signin_number_not_unique`).
    pub fn sms_key(&self) -> Option<String> {
        match (self.sms_sign_in, &self.methods.mobile) {
            (Some(SmsSignIn::Enable), Some(Some(m))) => Some(m.clone()),
            _ => None,
        }
    }

    pub fn into_request(self, job: Job) -> Request {
        Request {
            v: MESSAGE_VERSION,
            job,
            row: Some(self.row),
            user: self.user,
            methods: self.methods,
            policy: self.policy,
            sms_sign_in: self.sms_sign_in,
            default_method: self.default_method,
            temporary_access_pass: self.temporary_access_pass,
            reply_to: None,
        }
    }
}

/// `true/false/yes/no/1/0` in any case, German Excel's `ja/nein` and `wahr/falsch`; empty = false.
pub fn parse_bool(s: &str) -> Option<bool> {
    const FALSE: [&str; 7] = ["", "false", "no", "0", "nein", "falsch", "n"];
    const TRUE: [&str; 6] = ["true", "yes", "1", "ja", "wahr", "y"];
    let s = s.trim();
    if FALSE.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        Some(false)
    } else if TRUE.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        Some(true)
    } else {
        None
    }
}

/// A yes/no cell ([`parse_bool`]), or why not.
fn bool_cell(cell: &str) -> Result<bool, String> {
    parse_bool(cell)
        .ok_or_else(|| format!("'{cell}' is not a yes/no value (true/false, yes/no, 1/0, ja/nein)"))
}

fn is_phone(f: Field) -> bool {
    matches!(f, Field::Mobile | Field::AlternateMobile | Field::Office)
}

/// A cell a spreadsheet would run as a formula (CSV injection from exports).
fn looks_like_formula(f: Field, cell: &str) -> bool {
    let Some(c) = cell.chars().next() else {
        return false;
    };
    match c {
        '=' | '@' | '\t' | '\r' => true,
        '+' => !is_phone(f),
        '-' => true,
        _ => false,
    }
}

/// A character no cell may hold: a control character other than a tab (a carriage return inside a
/// line too) or a Unicode noncharacter. SQS refuses most of them in a message, and none has a place
/// in a user, a number or an address.
fn forbidden_in_cell(c: char) -> bool {
    let u = c as u32;
    (c.is_control() && c != '\t') || (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE
}

/// The row's first forbidden character: its column, its position in the cell (from 1), and it.
fn forbidden_char(raw: &RawRow) -> Option<(usize, usize, char)> {
    let (text, ends) = raw.text();
    // Almost every row is printable ASCII, which holds none of them.
    if crate::sqs_text::is_printable_ascii(text.as_bytes()) {
        return None;
    }
    let (at, c) = text.char_indices().find(|(_, c)| forbidden_in_cell(*c))?;
    let column = ends
        .iter()
        .position(|&end| at < end)
        .unwrap_or(ends.len().saturating_sub(1));
    let start = if column == 0 { 0 } else { ends[column - 1] };
    let position = text.get(start..at).map_or(0, |t| t.chars().count()) + 1;
    Some((column, position, c))
}

/// `System.String[]` and the like: PowerShell's `Export-Csv` writes a list's type name, not its
/// values (Graph's `businessPhones` and `otherMails` are lists).
fn is_flat_array(cell: &str) -> bool {
    cell.starts_with("System.") && cell.ends_with("[]")
}

/// An SMS sign-in cell (trimmed): empty, `enable(d)` or `disable(d)` in any case; `Err` otherwise.
fn parse_sms_sign_in(cell: &str) -> Result<Option<SmsSignIn>, ()> {
    let is = |a: &str, b: &str| cell.eq_ignore_ascii_case(a) || cell.eq_ignore_ascii_case(b);
    if cell.is_empty() {
        Ok(None)
    } else if is("enable", "enabled") {
        Ok(Some(SmsSignIn::Enable))
    } else if is("disable", "disabled") {
        Ok(Some(SmsSignIn::Disable))
    } else {
        Err(())
    }
}

/// Whether the row's SMS sign-in cell says `enable`, read from that cell alone. A row for which
/// this is false has no [`ValidRow::sms_key`], whatever else it holds, so callers that only need
/// that key can skip validating it.
pub fn asks_sms_sign_in(raw: &RawRow, layout: &Layout) -> bool {
    layout.fields.iter().enumerate().any(|(i, f)| {
        *f == Some(Field::SmsSignIn)
            && raw
                .cell(i)
                .is_some_and(|c| parse_sms_sign_in(c.trim()) == Ok(Some(SmsSignIn::Enable)))
    })
}

/// Validates and normalises one row.
pub fn validate(raw: &RawRow, layout: &Layout, settings: &Settings) -> Result<ValidRow, RowError> {
    // A detail may quote the cell (a number in the user column, a list exported flat): numbers
    // in it are masked, as everywhere a detail goes (the DLQ's `detail`, logs, rejects files).
    let err = |i: usize, reason: Reason, detail: String| RowError {
        row: raw.row,
        column: layout.headers.get(i).cloned(),
        reason,
        detail: crate::mask::mask_numbers_in_text(&detail),
    };
    let mut user = None;
    let mut methods = Methods::default();
    let mut policy = Policy::default();
    let mut sms_sign_in = None;
    let mut default_method = None;
    // Temporary Access Pass: the lifetime asks for one; start and one-time use qualify it.
    let mut tap_lifetime: Option<u32> = None;
    let mut tap_start: Option<(usize, String)> = None;
    let mut tap_once: Option<(usize, bool)> = None;
    if let Some((i, position, c)) = forbidden_char(raw) {
        let what = match c {
            '\r' => "a carriage return inside the line".to_string(),
            c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
            c => format!("a Unicode noncharacter (U+{:04X})", c as u32),
        };
        return Err(err(
            i,
            Reason::InvalidRow,
            format!("the cell holds {what} at character {position}; remove it and upload the file again"),
        ));
    }
    for (i, field) in layout.fields.iter().enumerate() {
        let Some(field) = *field else { continue };
        let original = raw.cell(i).unwrap_or("");
        if looks_like_formula(field, original.trim_start_matches(' ')) {
            return Err(err(
                i,
                Reason::InvalidRow,
                "the cell looks like a spreadsheet formula (starts with = + - @ or a tab); refused"
                    .into(),
            ));
        }
        let cell = original.trim();
        if is_flat_array(cell) {
            let header = layout.headers.get(i).map_or("", String::as_str);
            return Err(err(
                i,
                Reason::InvalidRow,
                format!(
                    "the cell holds '{cell}': a list was exported flat (PowerShell writes a list's type name, not its values); export the column joined, e.g. Select-Object ..., @{{n='{header}'; e={{$_.{header} -join ';'}}}} | Export-Csv"
                ),
            ));
        }
        match field {
            Field::User => match crate::user::validate_user(cell) {
                Ok(u) => user = Some(u),
                Err(e) => return Err(err(i, Reason::InvalidUser, e.to_string())),
            },
            Field::Mobile | Field::AlternateMobile | Field::Office => {
                let value = if cell.is_empty() {
                    None
                } else {
                    match crate::phone::normalise(cell, settings.default_country) {
                        Ok(v) => Some(v),
                        Err(e) => return Err(err(i, Reason::InvalidPhoneNumber, e.to_string())),
                    }
                };
                match field {
                    Field::Mobile => methods.mobile = Some(value),
                    Field::AlternateMobile => methods.alternate_mobile = Some(value),
                    _ => methods.office = Some(value),
                }
            }
            Field::Email => {
                methods.email = Some(if cell.is_empty() {
                    None
                } else {
                    match crate::email::validate_email(cell) {
                        Ok(v) => Some(v),
                        Err(e) => return Err(err(i, Reason::InvalidEmail, e.to_string())),
                    }
                })
            }
            Field::ForcedUpdate | Field::ForcedRemoval => {
                let b = bool_cell(cell).map_err(|e| err(i, Reason::InvalidRow, e))?;
                if field == Field::ForcedUpdate {
                    policy.forced_update = b;
                } else {
                    policy.forced_removal = b;
                }
            }
            Field::SmsSignIn => {
                sms_sign_in = match parse_sms_sign_in(cell) {
                    Ok(v) => v,
                    Err(()) => {
                        return Err(err(
                            i,
                            Reason::InvalidRow,
                            format!("'{cell}' is not enable, disable or empty"),
                        ))
                    }
                }
            }
            Field::DefaultMethod => {
                default_method = if cell.is_empty() {
                    None
                } else {
                    match DefaultMethod::parse(cell) {
                        Some(m) => Some(m),
                        None => {
                            return Err(err(
                                i,
                                Reason::InvalidRow,
                                format!("'{cell}' is not one of sms, voiceMobile, voiceAlternateMobile, voiceOffice, push, oath"),
                            ))
                        }
                    }
                }
            }
            Field::TapLifetimeMinutes => {
                if !cell.is_empty() {
                    match crate::tap::parse_lifetime(cell) {
                        Ok(m) => tap_lifetime = Some(m),
                        Err(e) => return Err(err(i, Reason::InvalidRow, e)),
                    }
                }
            }
            Field::TapStart => {
                if !cell.is_empty() {
                    match crate::tap::parse_start(cell) {
                        Ok(t) => tap_start = Some((i, t)),
                        Err(e) => return Err(err(i, Reason::InvalidRow, e)),
                    }
                }
            }
            Field::TapUsableOnce => {
                if !cell.is_empty() {
                    let b = bool_cell(cell).map_err(|e| err(i, Reason::InvalidRow, e))?;
                    tap_once = Some((i, b));
                }
            }
        }
    }
    let temporary_access_pass = match tap_lifetime {
        Some(lifetime_in_minutes) => Some(TapRequest {
            lifetime_in_minutes,
            start_date_time: tap_start.map(|(_, t)| t),
            is_usable_once: tap_once.is_none_or(|(_, b)| b),
        }),
        None => {
            if let Some(i) = tap_start
                .as_ref()
                .map(|(i, _)| *i)
                .or(tap_once.map(|(i, _)| i))
            {
                return Err(err(
                    i,
                    Reason::InvalidRow,
                    "a Temporary Access Pass start or one-time setting without TapLifetimeMinutes: give the lifetime (10-43200 minutes), or leave the cell empty".into(),
                ));
            }
            None
        }
    };
    let user = user.ok_or_else(|| RowError {
        row: raw.row,
        column: None,
        reason: Reason::InvalidUser,
        detail: "the row has no user".into(),
    })?;
    Ok(ValidRow {
        row: raw.row,
        user,
        methods,
        policy,
        sms_sign_in,
        default_method,
        temporary_access_pass,
    })
}
