//! What to change for one user: a pure function from the current methods and the request to an
//! ordered list of Graph writes (README, "CSV format").

use std::fmt;

use crate::graph::email_methods::EmailMethod;
use crate::graph::phone_methods::{PhoneMethod, PhoneType, SmsSignInState};
use crate::mask::{mask_email, mask_phone};
use crate::message::{DefaultMethod, Desired, Request, SmsSignIn};
use crate::reason::{Outcome, Reason};
use crate::tap::{ExistingPass, TapRequest};

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
    /// The user's usable Temporary Access Pass (read only when the request asks for one;
    /// expired and used passes are left out: they do not stop a new one).
    pub tap: Option<ExistingPass>,
    /// That pass was created by an earlier try of this very request and never delivered (the
    /// caller knows: the worker recorded its id before delivering it): it is replaced,
    /// whatever `forcedUpdate` says, since nobody has it.
    pub tap_is_ours: bool,
    /// The tenant's Temporary Access Pass policy is off (read once per run).
    pub tap_policy_off: bool,
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
    TemporaryAccessPass,
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
            Subject::TemporaryAccessPass => "temporaryAccessPass",
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
    CreatePhone {
        kind: PhoneType,
        number: String,
    },
    UpdatePhone {
        kind: PhoneType,
        number: String,
    },
    DeletePhone {
        kind: PhoneType,
    },
    CreateEmail {
        address: String,
    },
    UpdateEmail {
        address: String,
    },
    DeleteEmail,
    EnableSmsSignIn,
    DisableSmsSignIn,
    SetDefaultMethod {
        method: DefaultMethod,
    },
    /// Issue a Temporary Access Pass.
    CreateTap {
        request: TapRequest,
    },
    /// Delete the user's pass `id` (before a forced replacement).
    DeleteTap {
        id: String,
    },
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
            Action::CreateTap { request } => request.label(),
            Action::DeleteTap { .. } => "temporaryAccessPass:delete".to_string(),
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
            Action::CreateTap { .. } | Action::DeleteTap { .. } => Subject::TemporaryAccessPass,
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
    /// A refusal that does not stop the user's other writes (a Temporary Access Pass the
    /// user already has, or one the policy does not allow): the row ends with it once they
    /// are made.
    pub deferred: Option<Rejection>,
}

impl Plan {
    /// The user's outcome: the rejection (or the deferred one), or the first of created >
    /// updated > deleted > skipped_exists > unchanged among the decisions.
    pub fn outcome(&self) -> Result<Outcome, Rejection> {
        match self.rejection.as_ref().or(self.deferred.as_ref()) {
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

/// The plan for one user (README, "CSV format"), in steps: phones, email, the invariants
/// (alternate needs a mobile, the default method's phone stays), SMS sign-in, default method.
/// Order of the writes: creates/updates (mobile, alternateMobile, office), email, SMS sign-in,
/// default method, then deletes (alternateMobile and office before mobile). A rejected plan has
/// no actions.
pub fn plan(current: &CurrentMethods, req: &Request) -> Plan {
    let mut draft = Draft::new(current, req);
    draft.phones();
    draft.email();
    let checked = draft
        .alternate_needs_mobile()
        .and_then(|()| draft.default_phone_stays())
        .and_then(|()| draft.sms_sign_in());
    match checked {
        Ok(()) => {
            draft.default_method();
            draft.tap();
            draft.finish()
        }
        Err(rejection) => Plan {
            actions: Vec::new(),
            decisions: draft.decisions,
            rejection: Some(rejection),
            deferred: None,
        },
    }
}

/// A plan being made: the decisions so far, the writes by group, and the methods as they will
/// be once the writes are made.
struct Draft<'a> {
    current: &'a CurrentMethods,
    req: &'a Request,
    decisions: Vec<Decision>,
    upserts: Vec<Action>,
    email_actions: Vec<Action>,
    sms_actions: Vec<Action>,
    default_actions: Vec<Action>,
    deletes: Vec<Action>,
    tap_actions: Vec<Action>,
    deferred: Option<Rejection>,
    final_state: CurrentMethods,
    mobile_written: bool,
}

impl<'a> Draft<'a> {
    fn new(current: &'a CurrentMethods, req: &'a Request) -> Draft<'a> {
        Draft {
            current,
            req,
            decisions: Vec::new(),
            upserts: Vec::new(),
            email_actions: Vec::new(),
            sms_actions: Vec::new(),
            default_actions: Vec::new(),
            deletes: Vec::new(),
            tap_actions: Vec::new(),
            deferred: None,
            final_state: current.clone(),
            mobile_written: false,
        }
    }

    fn decide(&mut self, subject: Subject, outcome: Outcome) {
        self.decisions.push(Decision { subject, outcome });
    }

    /// Mobile, alternate mobile and office: create, update (forced), delete (forced) or keep.
    fn phones(&mut self) {
        let policy = self.req.policy;
        for kind in PhoneType::ALL {
            let cur = self.current.phone(kind);
            let outcome = match (desired_phone(self.req, kind), cur) {
                (None, _) => continue,
                (Some(Some(v)), None) => {
                    self.upserts.push(Action::CreatePhone {
                        kind,
                        number: v.clone(),
                    });
                    self.final_state.set_phone(kind, Some(v.clone()));
                    Outcome::Created
                }
                (Some(Some(v)), Some(c)) if crate::phone::same(v, c) => Outcome::Unchanged,
                (Some(Some(v)), Some(_)) if policy.forced_update => {
                    self.upserts.push(Action::UpdatePhone {
                        kind,
                        number: v.clone(),
                    });
                    self.final_state.set_phone(kind, Some(v.clone()));
                    Outcome::Updated
                }
                (Some(Some(_)), Some(_)) => Outcome::SkippedExists,
                (Some(None), Some(_)) if policy.forced_removal => {
                    self.deletes.push(Action::DeletePhone { kind });
                    self.final_state.set_phone(kind, None);
                    Outcome::Deleted
                }
                (Some(None), _) => Outcome::Unchanged,
            };
            if kind == PhoneType::Mobile && matches!(outcome, Outcome::Created | Outcome::Updated) {
                self.mobile_written = true;
            }
            self.decide(Subject::from_phone(kind), outcome);
        }
    }

    /// The SSPR email: create, update (forced), delete (forced) or keep.
    fn email(&mut self) {
        let policy = self.req.policy;
        let Some(desired) = &self.req.methods.email else {
            return;
        };
        let outcome = match (desired, self.current.email.as_deref()) {
            (Some(v), None) => {
                self.email_actions
                    .push(Action::CreateEmail { address: v.clone() });
                Outcome::Created
            }
            (Some(v), Some(c)) if same_email(v, c) => Outcome::Unchanged,
            (Some(v), Some(_)) if policy.forced_update => {
                self.email_actions
                    .push(Action::UpdateEmail { address: v.clone() });
                Outcome::Updated
            }
            (Some(_), Some(_)) => Outcome::SkippedExists,
            (None, Some(_)) if policy.forced_removal => {
                self.email_actions.push(Action::DeleteEmail);
                Outcome::Deleted
            }
            (None, _) => Outcome::Unchanged,
        };
        self.decide(Subject::Email, outcome);
    }

    /// An alternate mobile needs a mobile (checked when the request manages either of them).
    fn alternate_needs_mobile(&self) -> Result<(), Rejection> {
        let m = &self.req.methods;
        let manages_mobiles = m.mobile.is_some() || m.alternate_mobile.is_some();
        if manages_mobiles
            && self.final_state.alternate_mobile.is_some()
            && self.final_state.mobile.is_none()
        {
            let detail = if self.current.mobile.is_some() {
                "the mobile cannot be removed while the alternate mobile stays (remove both, or keep the mobile)"
            } else {
                "alternateMobile needs a mobile: the user has none and the request gives none"
            };
            return Err(Rejection::new(
                Reason::AlternateRequiresMobile,
                detail.to_string(),
            ));
        }
        Ok(())
    }

    /// The default method's phone cannot be deleted (unless the request moves the default away).
    fn default_phone_stays(&self) -> Result<(), Rejection> {
        let Some(default) = self.current.default_method.as_deref() else {
            return Ok(());
        };
        let Some(phone) = default_method_phone(default) else {
            return Ok(());
        };
        let deleting = self
            .deletes
            .iter()
            .any(|a| matches!(a, Action::DeletePhone { kind } if *kind == phone));
        let moved_away = self
            .req
            .default_method
            .is_some_and(|m| default_method_phone(m.as_str()) != Some(phone));
        if deleting && !moved_away {
            return Err(Rejection::new(
                Reason::DefaultMethodConflict,
                format!(
                    "{} is used by the user's default sign-in method '{default}' and cannot be removed",
                    phone.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// SMS sign-in on the mobile: enable needs a mobile once the writes are made; after a
    /// create/update the state is checked again at apply time.
    fn sms_sign_in(&mut self) -> Result<(), Rejection> {
        let Some(sms) = self.req.sms_sign_in else {
            return Ok(());
        };
        let has_mobile = self.final_state.mobile.is_some();
        let outcome = match sms {
            SmsSignIn::Enable if !has_mobile => {
                return Err(Rejection::new(
                    Reason::InvalidRow,
                    "smsSignIn enable needs a mobile phone method: the user has none and the request gives none",
                ));
            }
            SmsSignIn::Enable => {
                let ready = self
                    .current
                    .sms_sign_in_state
                    .as_ref()
                    .is_some_and(SmsSignInState::is_ready);
                if self.mobile_written || !ready {
                    self.sms_actions.push(Action::EnableSmsSignIn);
                    Outcome::Updated
                } else {
                    Outcome::Unchanged
                }
            }
            SmsSignIn::Disable => {
                if has_mobile && (self.mobile_written || self.current.sms_sign_in_enabled()) {
                    self.sms_actions.push(Action::DisableSmsSignIn);
                    Outcome::Updated
                } else {
                    Outcome::Unchanged
                }
            }
        };
        self.decide(Subject::SmsSignIn, outcome);
        Ok(())
    }

    /// The default sign-in method, when the request names one.
    fn default_method(&mut self) {
        let Some(m) = self.req.default_method else {
            return;
        };
        let same = self
            .current
            .default_method
            .as_deref()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case(m.as_str()));
        let outcome = if same {
            Outcome::Unchanged
        } else {
            self.default_actions
                .push(Action::SetDefaultMethod { method: m });
            Outcome::Updated
        };
        self.decide(Subject::DefaultMethod, outcome);
    }

    /// A Temporary Access Pass: created when the user has no usable one; an existing one is
    /// `tap_exists` unless `forcedUpdate` (delete, then create) or it is this request's own
    /// undelivered pass; a policy that is off is `tap_not_allowed_by_policy`. Either refusal
    /// lets the other writes go on.
    fn tap(&mut self) {
        let Some(request) = &self.req.temporary_access_pass else {
            return;
        };
        if self.current.tap_policy_off {
            self.deferred = Some(Rejection::new(
                Reason::TapNotAllowedByPolicy,
                "the tenant's Temporary Access Pass policy is off (authentication methods policy: state disabled)",
            ));
            return;
        }
        let outcome = match &self.current.tap {
            None => Outcome::Created,
            Some(existing) if self.req.policy.forced_update || self.current.tap_is_ours => {
                self.tap_actions.push(Action::DeleteTap {
                    id: existing.id.clone(),
                });
                Outcome::Updated
            }
            Some(existing) => {
                let since = existing
                    .created
                    // No long run of digits: details are masked for phone numbers.
                    .map(|t| format!(" (created {})", t.format("%-d %b %Y at %H:%M UTC")))
                    .unwrap_or_default();
                self.deferred = Some(Rejection::new(
                    Reason::TapExists,
                    format!("the user already has a usable Temporary Access Pass{since}; ForcedUpdate replaces it"),
                ));
                self.decide(Subject::TemporaryAccessPass, Outcome::SkippedExists);
                return;
            }
        };
        self.tap_actions.push(Action::CreateTap {
            request: request.clone(),
        });
        self.decide(Subject::TemporaryAccessPass, outcome);
    }

    /// The writes in order; deletes last, the mobile's last of all (an alternate being removed
    /// goes first); the Temporary Access Pass after everything else, so that a pass is issued
    /// only once the user's other methods are written.
    fn finish(mut self) -> Plan {
        self.deletes.sort_by_key(|a| {
            matches!(
                a,
                Action::DeletePhone {
                    kind: PhoneType::Mobile
                }
            )
        });
        let mut actions = self.upserts;
        actions.extend(self.email_actions);
        actions.extend(self.sms_actions);
        actions.extend(self.default_actions);
        actions.extend(self.deletes);
        actions.extend(self.tap_actions);
        Plan {
            actions,
            decisions: self.decisions,
            rejection: None,
            deferred: self.deferred,
        }
    }
}

#[cfg(test)]
mod tests;
