//! What to change for one user: a pure function from the current methods and the request to an
//! ordered list of Graph writes (README, "CSV format").

use std::fmt;

use crate::graph::email_methods::EmailMethod;
use crate::graph::phone_methods::{PhoneMethod, PhoneType, SmsSignInState};
use crate::mask::{mask_email, mask_phone};
use crate::message::{DefaultMethod, Desired, Request, SmsSignIn};
use crate::reason::{Outcome, Reason};

/// A permanent "no" for one user, with a human detail (numbers masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// The user's methods as Graph reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentMethods {
    pub mobile: Option<String>,
    pub alternate_mobile: Option<String>,
    pub office: Option<String>,
    /// The SSPR email; only meaningful when it was read.
    pub email: Option<String>,
    /// The email method's id, for PATCH/DELETE.
    pub email_id: Option<String>,
    /// `smsSignInState` of the mobile method.
    pub sms_sign_in_state: Option<SmsSignInState>,
    /// `userPreferredMethodForSecondaryAuthentication`, when known (read only when needed).
    pub default_method: Option<String>,
}

impl CurrentMethods {
    pub fn from_graph(
        phones: &[PhoneMethod],
        emails: &[EmailMethod],
        default_method: Option<String>,
    ) -> CurrentMethods {
        let mut c = CurrentMethods {
            default_method: default_method.filter(|d| !d.trim().is_empty()),
            ..CurrentMethods::default()
        };
        for p in phones {
            let number = p.phone_number.clone().filter(|n| !n.trim().is_empty());
            match p.kind() {
                Some(PhoneType::Mobile) => {
                    c.mobile = number;
                    c.sms_sign_in_state = p.sms_sign_in_state.clone();
                }
                Some(PhoneType::AlternateMobile) => c.alternate_mobile = number,
                Some(PhoneType::Office) => c.office = number,
                None => {}
            }
        }
        if let Some(e) = emails.first() {
            c.email = e.email_address.clone().filter(|a| !a.trim().is_empty());
            c.email_id = Some(e.id.clone());
        }
        c
    }

    pub fn phone(&self, kind: PhoneType) -> Option<&str> {
        match kind {
            PhoneType::Mobile => self.mobile.as_deref(),
            PhoneType::AlternateMobile => self.alternate_mobile.as_deref(),
            PhoneType::Office => self.office.as_deref(),
        }
    }

    pub fn set_phone(&mut self, kind: PhoneType, value: Option<String>) {
        match kind {
            PhoneType::Mobile => self.mobile = value,
            PhoneType::AlternateMobile => self.alternate_mobile = value,
            PhoneType::Office => self.office = value,
        }
    }

    /// SMS sign-in is on for the mobile (`ready`, or `phoneNumberNotUnique` which Graph reports
    /// for an enabled number that another user also has).
    pub fn sms_sign_in_enabled(&self) -> bool {
        self.sms_sign_in_state
            .as_ref()
            .is_some_and(SmsSignInState::is_enabled)
    }
}

/// What a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Mobile,
    AlternateMobile,
    Office,
    Email,
    SmsSignIn,
    DefaultMethod,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Mobile => "mobile",
            Subject::AlternateMobile => "alternateMobile",
            Subject::Office => "office",
            Subject::Email => "email",
            Subject::SmsSignIn => "smsSignIn",
            Subject::DefaultMethod => "defaultMethod",
        }
    }

    pub fn from_phone(kind: PhoneType) -> Subject {
        match kind {
            PhoneType::Mobile => Subject::Mobile,
            PhoneType::AlternateMobile => Subject::AlternateMobile,
            PhoneType::Office => Subject::Office,
        }
    }
}

/// The per-method result: `smsSignIn` and `defaultMethod` changes count as `updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub subject: Subject,
    pub outcome: Outcome,
}

/// One Graph write.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    CreatePhone { kind: PhoneType, number: String },
    UpdatePhone { kind: PhoneType, number: String },
    DeletePhone { kind: PhoneType },
    CreateEmail { address: String },
    UpdateEmail { address: String },
    DeleteEmail,
    EnableSmsSignIn,
    DisableSmsSignIn,
    SetDefaultMethod { method: DefaultMethod },
}

impl Action {
    /// `mobile:create(+1 555****234)`: safe for logs (numbers and emails masked).
    pub fn label(&self) -> String {
        match self {
            Action::CreatePhone { kind, number } => {
                format!("{}:create({})", kind.as_str(), mask_phone(number))
            }
            Action::UpdatePhone { kind, number } => {
                format!("{}:update({})", kind.as_str(), mask_phone(number))
            }
            Action::DeletePhone { kind } => format!("{}:delete", kind.as_str()),
            Action::CreateEmail { address } => format!("email:create({})", mask_email(address)),
            Action::UpdateEmail { address } => format!("email:update({})", mask_email(address)),
            Action::DeleteEmail => "email:delete".to_string(),
            Action::EnableSmsSignIn => "smsSignIn:enable".to_string(),
            Action::DisableSmsSignIn => "smsSignIn:disable".to_string(),
            Action::SetDefaultMethod { method } => {
                format!("defaultMethod:set({})", method.as_str())
            }
        }
    }

    pub fn subject(&self) -> Subject {
        match self {
            Action::CreatePhone { kind, .. }
            | Action::UpdatePhone { kind, .. }
            | Action::DeletePhone { kind } => Subject::from_phone(*kind),
            Action::CreateEmail { .. } | Action::UpdateEmail { .. } | Action::DeleteEmail => {
                Subject::Email
            }
            Action::EnableSmsSignIn | Action::DisableSmsSignIn => Subject::SmsSignIn,
            Action::SetDefaultMethod { .. } => Subject::DefaultMethod,
        }
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// The ordered writes and the per-method decisions for one user, or why nothing may be done.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub decisions: Vec<Decision>,
    pub rejection: Option<Rejection>,
}

impl Plan {
    /// The user's outcome: the rejection, or the first of created > updated > deleted >
    /// skipped_exists > unchanged among the decisions.
    pub fn outcome(&self) -> Result<Outcome, Rejection> {
        match &self.rejection {
            Some(r) => Err(r.clone()),
            None => Ok(summarise(&self.decisions)),
        }
    }

    /// `mobile=created alternateMobile=skipped_exists`: the per-method detail.
    pub fn describe(&self) -> String {
        describe_decisions(&self.decisions)
    }
}

/// `mobile=created office=unchanged`.
pub fn describe_decisions(decisions: &[Decision]) -> String {
    decisions
        .iter()
        .map(|d| format!("{}={}", d.subject.as_str(), d.outcome))
        .collect::<Vec<_>>()
        .join(" ")
}

/// First of created > updated > deleted > skipped_exists > unchanged.
pub fn summarise(decisions: &[Decision]) -> Outcome {
    const ORDER: [Outcome; 4] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Deleted,
        Outcome::SkippedExists,
    ];
    ORDER
        .into_iter()
        .find(|o| decisions.iter().any(|d| d.outcome == *o))
        .unwrap_or(Outcome::Unchanged)
}

pub fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Which phone a default method uses.
pub fn default_method_phone(method: &str) -> Option<PhoneType> {
    let m = method.trim();
    if m.eq_ignore_ascii_case("sms") || m.eq_ignore_ascii_case("voiceMobile") {
        Some(PhoneType::Mobile)
    } else if m.eq_ignore_ascii_case("voiceAlternateMobile") {
        Some(PhoneType::AlternateMobile)
    } else if m.eq_ignore_ascii_case("voiceOffice") {
        Some(PhoneType::Office)
    } else {
        None
    }
}

fn desired_phone(req: &Request, kind: PhoneType) -> &Desired {
    match kind {
        PhoneType::Mobile => &req.methods.mobile,
        PhoneType::AlternateMobile => &req.methods.alternate_mobile,
        PhoneType::Office => &req.methods.office,
    }
}

/// The plan for one user (README, "CSV format"). Order: creates/updates (mobile, alternateMobile,
/// office), email, SMS sign-in, default method, then deletes (alternateMobile and office before
/// mobile). A rejected plan has no actions.
pub fn plan(current: &CurrentMethods, req: &Request) -> Plan {
    let policy = req.policy;
    let mut decisions = Vec::new();
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    let mut final_state = current.clone();
    let mut mobile_written = false;

    for kind in PhoneType::ALL {
        let subject = Subject::from_phone(kind);
        let cur = current.phone(kind);
        let outcome = match (desired_phone(req, kind), cur) {
            (None, _) => continue,
            (Some(Some(v)), None) => {
                upserts.push(Action::CreatePhone {
                    kind,
                    number: v.clone(),
                });
                final_state.set_phone(kind, Some(v.clone()));
                Outcome::Created
            }
            (Some(Some(v)), Some(c)) if crate::phone::same(v, c) => Outcome::Unchanged,
            (Some(Some(v)), Some(_)) => {
                if policy.forced_update {
                    upserts.push(Action::UpdatePhone {
                        kind,
                        number: v.clone(),
                    });
                    final_state.set_phone(kind, Some(v.clone()));
                    Outcome::Updated
                } else {
                    Outcome::SkippedExists
                }
            }
            (Some(None), Some(_)) => {
                if policy.forced_removal {
                    deletes.push(Action::DeletePhone { kind });
                    final_state.set_phone(kind, None);
                    Outcome::Deleted
                } else {
                    Outcome::Unchanged
                }
            }
            (Some(None), None) => Outcome::Unchanged,
        };
        if kind == PhoneType::Mobile && matches!(outcome, Outcome::Created | Outcome::Updated) {
            mobile_written = true;
        }
        decisions.push(Decision { subject, outcome });
    }

    let mut email_actions = Vec::new();
    if let Some(desired) = &req.methods.email {
        let outcome = match (desired, current.email.as_deref()) {
            (Some(v), None) => {
                email_actions.push(Action::CreateEmail { address: v.clone() });
                Outcome::Created
            }
            (Some(v), Some(c)) if same_email(v, c) => Outcome::Unchanged,
            (Some(v), Some(_)) => {
                if policy.forced_update {
                    email_actions.push(Action::UpdateEmail { address: v.clone() });
                    Outcome::Updated
                } else {
                    Outcome::SkippedExists
                }
            }
            (None, Some(_)) if policy.forced_removal => {
                email_actions.push(Action::DeleteEmail);
                Outcome::Deleted
            }
            (None, _) => Outcome::Unchanged,
        };
        decisions.push(Decision {
            subject: Subject::Email,
            outcome,
        });
    }

    let reject = |reason: Reason, detail: String, decisions: Vec<Decision>| Plan {
        actions: Vec::new(),
        decisions,
        rejection: Some(Rejection::new(reason, detail)),
    };

    // alternateMobile needs a mobile (checked when the request manages either of them).
    let manages_mobiles = req.methods.mobile.is_some() || req.methods.alternate_mobile.is_some();
    if manages_mobiles && final_state.alternate_mobile.is_some() && final_state.mobile.is_none() {
        let detail = if current.mobile.is_some() {
            "the mobile cannot be removed while the alternate mobile stays (remove both, or keep the mobile)"
        } else {
            "alternateMobile needs a mobile: the user has none and the request gives none"
        };
        return reject(
            Reason::AlternateRequiresMobile,
            detail.to_string(),
            decisions,
        );
    }

    // The default method's phone cannot be deleted (unless the request moves the default away).
    if let Some(default) = current.default_method.as_deref() {
        if let Some(phone) = default_method_phone(default) {
            let deleting = deletes
                .iter()
                .any(|a| matches!(a, Action::DeletePhone { kind } if *kind == phone));
            let moved_away = req
                .default_method
                .is_some_and(|m| default_method_phone(m.as_str()) != Some(phone));
            if deleting && !moved_away {
                return reject(
                    Reason::DefaultMethodConflict,
                    format!(
                        "{} is used by the user's default sign-in method '{default}' and cannot be removed",
                        phone.as_str()
                    ),
                    decisions,
                );
            }
        }
    }

    let mut sms_actions = Vec::new();
    if let Some(sms) = req.sms_sign_in {
        let outcome = match sms {
            SmsSignIn::Enable => {
                if final_state.mobile.is_none() {
                    return reject(
                        Reason::InvalidRow,
                        "smsSignIn enable needs a mobile phone method: the user has none and the request gives none".into(),
                        decisions,
                    );
                }
                // After a create/update the state is checked again at apply time.
                if mobile_written
                    || !current
                        .sms_sign_in_state
                        .as_ref()
                        .is_some_and(SmsSignInState::is_ready)
                {
                    sms_actions.push(Action::EnableSmsSignIn);
                    Outcome::Updated
                } else {
                    Outcome::Unchanged
                }
            }
            SmsSignIn::Disable => {
                if final_state.mobile.is_some() && (mobile_written || current.sms_sign_in_enabled())
                {
                    sms_actions.push(Action::DisableSmsSignIn);
                    Outcome::Updated
                } else {
                    Outcome::Unchanged
                }
            }
        };
        decisions.push(Decision {
            subject: Subject::SmsSignIn,
            outcome,
        });
    }

    let mut default_actions = Vec::new();
    if let Some(m) = req.default_method {
        let same = current
            .default_method
            .as_deref()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case(m.as_str()));
        let outcome = if same {
            Outcome::Unchanged
        } else {
            default_actions.push(Action::SetDefaultMethod { method: m });
            Outcome::Updated
        };
        decisions.push(Decision {
            subject: Subject::DefaultMethod,
            outcome,
        });
    }

    // Deletes: mobile last, so an alternate being removed goes first.
    deletes.sort_by_key(|a| {
        matches!(
            a,
            Action::DeletePhone {
                kind: PhoneType::Mobile
            }
        )
    });
    let mut actions = upserts;
    actions.extend(email_actions);
    actions.extend(sms_actions);
    actions.extend(default_actions);
    actions.extend(deletes);
    Plan {
        actions,
        decisions,
        rejection: None,
    }
}

#[cfg(test)]
mod tests;
