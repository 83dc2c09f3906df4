//! What to change for one user: a pure function from the current methods and the request to an
//! ordered list of Graph writes (README, "CSV format").

use std::fmt;

use crate::graph::email_methods::EmailMethod;
use crate::graph::phone_methods::{PhoneMethod, PhoneType};
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
    pub sms_sign_in_state: Option<String>,
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
        self.sms_sign_in_state.as_deref().is_some_and(|s| {
            s.eq_ignore_ascii_case("ready") || s.eq_ignore_ascii_case("phoneNumberNotUnique")
        })
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
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case("ready"))
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
mod tests {
    use super::*;
    use crate::message::{Job, Methods, Policy, MESSAGE_VERSION};

    const M1: &str = "+1 5555551234";
    const M2: &str = "+1 5555559999";
    const A1: &str = "+44 7700900123";
    const O1: &str = "+31 201234567";

    fn d(v: Option<&str>) -> Desired {
        Some(v.map(str::to_string))
    }

    fn req(methods: Methods, forced_update: bool, forced_removal: bool) -> Request {
        Request {
            v: MESSAGE_VERSION,
            job: Job::Producer {
                producer: "test".into(),
                id: None,
            },
            row: Some(2),
            user: "u@contoso.com".into(),
            methods,
            policy: Policy {
                forced_update,
                forced_removal,
            },
            sms_sign_in: None,
            default_method: None,
        }
    }

    fn cur(mobile: Option<&str>, alt: Option<&str>, office: Option<&str>) -> CurrentMethods {
        CurrentMethods {
            mobile: mobile.map(str::to_string),
            alternate_mobile: alt.map(str::to_string),
            office: office.map(str::to_string),
            ..CurrentMethods::default()
        }
    }

    fn labels(p: &Plan) -> Vec<String> {
        p.actions.iter().map(Action::label).collect()
    }

    /// (name, current, desired mobile, forcedUpdate, forcedRemoval, expected actions, expected outcome)
    #[test]
    fn mobile_semantics_table() {
        type Case = (
            &'static str,
            Option<&'static str>,
            Desired,
            bool,
            bool,
            Vec<&'static str>,
            Result<Outcome, Reason>,
        );
        let cases: Vec<Case> = vec![
            (
                "absent+value=create",
                None,
                d(Some(M1)),
                false,
                false,
                vec!["mobile:create(+1 555****234)"],
                Ok(Outcome::Created),
            ),
            (
                "same=nothing",
                Some(M1),
                d(Some(M1)),
                false,
                false,
                vec![],
                Ok(Outcome::Unchanged),
            ),
            (
                "same other format=nothing",
                Some("+15555551234"),
                d(Some(M1)),
                true,
                true,
                vec![],
                Ok(Outcome::Unchanged),
            ),
            (
                "different no force=skip",
                Some(M2),
                d(Some(M1)),
                false,
                true,
                vec![],
                Ok(Outcome::SkippedExists),
            ),
            (
                "different force=update",
                Some(M2),
                d(Some(M1)),
                true,
                false,
                vec!["mobile:update(+1 555****234)"],
                Ok(Outcome::Updated),
            ),
            (
                "empty present no force=nothing",
                Some(M1),
                d(None),
                true,
                false,
                vec![],
                Ok(Outcome::Unchanged),
            ),
            (
                "empty present force=delete",
                Some(M1),
                d(None),
                false,
                true,
                vec!["mobile:delete"],
                Ok(Outcome::Deleted),
            ),
            (
                "empty absent=nothing",
                None,
                d(None),
                true,
                true,
                vec![],
                Ok(Outcome::Unchanged),
            ),
            (
                "not managed=nothing",
                Some(M1),
                None,
                true,
                true,
                vec![],
                Ok(Outcome::Unchanged),
            ),
            (
                "extension differs=update",
                Some("+1 5555551234x1"),
                d(Some("+1 5555551234x2")),
                true,
                false,
                vec!["mobile:update(+1 555****234)"],
                Ok(Outcome::Updated),
            ),
        ];
        for (name, current, desired, fu, fr, actions, outcome) in cases {
            let r = req(
                Methods {
                    mobile: desired,
                    ..Methods::default()
                },
                fu,
                fr,
            );
            let p = plan(&cur(current, None, None), &r);
            assert_eq!(labels(&p), actions, "{name}");
            assert_eq!(p.outcome().map_err(|r| r.reason), outcome, "{name}");
        }
    }

    #[test]
    fn email_semantics_table() {
        type Case<'a> = (Option<&'a str>, Desired, bool, bool, Vec<&'a str>, Outcome);
        let cases: Vec<Case> = vec![
            (
                None,
                d(Some("a@x.com")),
                false,
                false,
                vec!["email:create(a***@x.com)"],
                Outcome::Created,
            ),
            (
                Some("A@X.com"),
                d(Some("a@x.com")),
                false,
                false,
                vec![],
                Outcome::Unchanged,
            ),
            (
                Some("b@x.com"),
                d(Some("a@x.com")),
                false,
                false,
                vec![],
                Outcome::SkippedExists,
            ),
            (
                Some("b@x.com"),
                d(Some("a@x.com")),
                true,
                false,
                vec!["email:update(a***@x.com)"],
                Outcome::Updated,
            ),
            (
                Some("b@x.com"),
                d(None),
                false,
                true,
                vec!["email:delete"],
                Outcome::Deleted,
            ),
            (
                Some("b@x.com"),
                d(None),
                false,
                false,
                vec![],
                Outcome::Unchanged,
            ),
            (
                Some("b@x.com"),
                None,
                true,
                true,
                vec![],
                Outcome::Unchanged,
            ),
        ];
        for (current, desired, fu, fr, actions, outcome) in cases {
            let r = req(
                Methods {
                    email: desired.clone(),
                    ..Methods::default()
                },
                fu,
                fr,
            );
            let c = CurrentMethods {
                email: current.map(str::to_string),
                ..CurrentMethods::default()
            };
            let p = plan(&c, &r);
            assert_eq!(labels(&p), actions, "{current:?} {desired:?}");
            assert_eq!(p.outcome(), Ok(outcome), "{current:?} {desired:?}");
        }
    }

    #[test]
    fn mobile_goes_before_alternate_and_office() {
        let r = req(
            Methods {
                mobile: d(Some(M1)),
                alternate_mobile: d(Some(A1)),
                office: d(Some(O1)),
                email: None,
            },
            false,
            false,
        );
        let p = plan(&CurrentMethods::default(), &r);
        assert_eq!(
            labels(&p),
            vec![
                "mobile:create(+1 555****234)",
                "alternateMobile:create(+44 770****123)",
                "office:create(+31 201***567)"
            ]
        );
        assert_eq!(p.outcome(), Ok(Outcome::Created));
        assert_eq!(
            p.describe(),
            "mobile=created alternateMobile=created office=created"
        );
    }

    #[test]
    fn alternate_requires_mobile() {
        // Alternate given, no mobile anywhere.
        let r = req(
            Methods {
                alternate_mobile: d(Some(A1)),
                ..Methods::default()
            },
            false,
            false,
        );
        let p = plan(&CurrentMethods::default(), &r);
        assert_eq!(
            p.outcome().unwrap_err().reason,
            Reason::AlternateRequiresMobile
        );
        assert!(p.actions.is_empty());
        // Alternate given, mobile exists: fine.
        let p = plan(&cur(Some(M1), None, None), &r);
        assert_eq!(labels(&p), vec!["alternateMobile:create(+44 770****123)"]);
        // Deleting the mobile while the alternate stays.
        let r = req(
            Methods {
                mobile: d(None),
                ..Methods::default()
            },
            false,
            true,
        );
        let p = plan(&cur(Some(M1), Some(A1), None), &r);
        let rej = p.outcome().unwrap_err();
        assert_eq!(rej.reason, Reason::AlternateRequiresMobile);
        assert!(rej.detail.contains("cannot be removed"));
        assert!(p.actions.is_empty());
        // Deleting both: alternate first.
        let r = req(
            Methods {
                mobile: d(None),
                alternate_mobile: d(None),
                ..Methods::default()
            },
            false,
            true,
        );
        let p = plan(&cur(Some(M1), Some(A1), None), &r);
        assert_eq!(labels(&p), vec!["alternateMobile:delete", "mobile:delete"]);
        assert_eq!(p.outcome(), Ok(Outcome::Deleted));
        // An existing alternate without mobile is left alone if the request does not manage them.
        let r = req(
            Methods {
                office: d(Some(O1)),
                ..Methods::default()
            },
            false,
            false,
        );
        let p = plan(&cur(None, Some(A1), None), &r);
        assert_eq!(labels(&p), vec!["office:create(+31 201***567)"]);
        // Managing the alternate (even unchanged) with no mobile is rejected.
        let r = req(
            Methods {
                alternate_mobile: d(Some(A1)),
                ..Methods::default()
            },
            false,
            false,
        );
        let p = plan(&cur(None, Some(A1), None), &r);
        assert_eq!(
            p.outcome().unwrap_err().reason,
            Reason::AlternateRequiresMobile
        );
        // ...but the mobile given with it fixes it.
        let r = req(
            Methods {
                mobile: d(Some(M1)),
                ..Methods::default()
            },
            false,
            false,
        );
        let p = plan(&cur(None, Some(A1), None), &r);
        assert_eq!(labels(&p), vec!["mobile:create(+1 555****234)"]);
    }

    #[test]
    fn default_method_conflicts() {
        let mut c = cur(Some(M1), None, Some(O1));
        c.default_method = Some("sms".into());
        let r = req(
            Methods {
                mobile: d(None),
                ..Methods::default()
            },
            false,
            true,
        );
        let p = plan(&c, &r);
        let rej = p.outcome().unwrap_err();
        assert_eq!(rej.reason, Reason::DefaultMethodConflict);
        assert!(rej.detail.contains("'sms'"));
        assert!(p.actions.is_empty());
        // Deleting the office is fine while the default is sms.
        let r = req(
            Methods {
                office: d(None),
                ..Methods::default()
            },
            false,
            true,
        );
        assert_eq!(labels(&plan(&c, &r)), vec!["office:delete"]);
        // voiceOffice protects the office.
        c.default_method = Some("voiceOffice".into());
        assert_eq!(
            plan(&c, &r).outcome().unwrap_err().reason,
            Reason::DefaultMethodConflict
        );
        // Moving the default away first makes the delete possible: PATCH before DELETE.
        let mut r2 = r.clone();
        r2.default_method = Some(DefaultMethod::VoiceMobile);
        assert_eq!(
            labels(&plan(&c, &r2)),
            vec!["defaultMethod:set(voiceMobile)", "office:delete"]
        );
        // Unknown default: left to Graph.
        c.default_method = None;
        assert_eq!(labels(&plan(&c, &r)), vec!["office:delete"]);
    }

    #[test]
    fn sms_sign_in() {
        let mut r = req(Methods::default(), false, false);
        r.sms_sign_in = Some(SmsSignIn::Enable);
        // No mobile at all.
        let p = plan(&CurrentMethods::default(), &r);
        assert_eq!(p.outcome().unwrap_err().reason, Reason::InvalidRow);
        // Mobile present, not enabled.
        let mut c = cur(Some(M1), None, None);
        c.sms_sign_in_state = Some("notEnabled".into());
        let p = plan(&c, &r);
        assert_eq!(labels(&p), vec!["smsSignIn:enable"]);
        assert_eq!(p.outcome(), Ok(Outcome::Updated));
        // Already ready: nothing.
        c.sms_sign_in_state = Some("ready".into());
        let p = plan(&c, &r);
        assert!(p.actions.is_empty());
        assert_eq!(p.outcome(), Ok(Outcome::Unchanged));
        // Created together with the mobile: after it.
        r.methods.mobile = d(Some(M1));
        let p = plan(&CurrentMethods::default(), &r);
        assert_eq!(
            labels(&p),
            vec!["mobile:create(+1 555****234)", "smsSignIn:enable"]
        );
        assert_eq!(p.outcome(), Ok(Outcome::Created));
        // Disable: only when enabled.
        r.methods.mobile = None;
        r.sms_sign_in = Some(SmsSignIn::Disable);
        assert_eq!(labels(&plan(&c, &r)), vec!["smsSignIn:disable"]);
        c.sms_sign_in_state = Some("notEnabled".into());
        assert!(plan(&c, &r).actions.is_empty());
        assert!(plan(&CurrentMethods::default(), &r).actions.is_empty());
    }

    #[test]
    fn default_method_only_when_different() {
        let mut r = req(Methods::default(), false, false);
        r.default_method = Some(DefaultMethod::VoiceMobile);
        let mut c = cur(Some(M1), None, None);
        c.default_method = Some("voicemobile".into());
        assert!(plan(&c, &r).actions.is_empty());
        c.default_method = Some("sms".into());
        let p = plan(&c, &r);
        assert_eq!(labels(&p), vec!["defaultMethod:set(voiceMobile)"]);
        assert_eq!(p.outcome(), Ok(Outcome::Updated));
    }

    #[test]
    fn outcome_precedence() {
        let r = req(
            Methods {
                mobile: d(Some(M1)),
                alternate_mobile: d(Some(A1)),
                office: d(None),
                email: None,
            },
            false,
            true,
        );
        // mobile skipped, alternate created, office deleted -> created.
        let p = plan(&cur(Some(M2), None, Some(O1)), &r);
        assert_eq!(p.outcome(), Ok(Outcome::Created));
        // mobile skipped, office deleted -> deleted.
        let p = plan(&cur(Some(M2), Some(A1), Some(O1)), &r);
        assert_eq!(p.outcome(), Ok(Outcome::Deleted));
        // mobile skipped only -> skipped_exists.
        let p = plan(&cur(Some(M2), Some(A1), None), &r);
        assert_eq!(p.outcome(), Ok(Outcome::SkippedExists));
        let s = |o: &[Outcome]| {
            summarise(
                &o.iter()
                    .map(|o| Decision {
                        subject: Subject::Mobile,
                        outcome: *o,
                    })
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            s(&[Outcome::Unchanged, Outcome::Updated, Outcome::Deleted]),
            Outcome::Updated
        );
        assert_eq!(
            s(&[Outcome::SkippedExists, Outcome::Unchanged]),
            Outcome::SkippedExists
        );
        assert_eq!(s(&[]), Outcome::Unchanged);
    }

    /// Applying a plan's actions to the state and planning again gives no writes.
    #[test]
    fn rerun_plans_zero_writes() {
        let reqs = vec![
            req(
                Methods {
                    mobile: d(Some(M1)),
                    alternate_mobile: d(Some(A1)),
                    office: d(None),
                    email: d(Some("a@x.com")),
                },
                true,
                true,
            ),
            req(
                Methods {
                    mobile: d(None),
                    alternate_mobile: d(None),
                    office: d(Some(O1)),
                    email: d(None),
                },
                true,
                true,
            ),
            req(
                Methods {
                    mobile: d(Some(M2)),
                    ..Methods::default()
                },
                true,
                false,
            ),
        ];
        let states = vec![
            CurrentMethods::default(),
            cur(Some(M1), Some(A1), Some(O1)),
            cur(Some(M1), None, None),
        ];
        for r in &reqs {
            for s in &states {
                let p = plan(s, r);
                if p.rejection.is_some() {
                    continue;
                }
                let mut after = s.clone();
                for a in &p.actions {
                    match a {
                        Action::CreatePhone { kind, number }
                        | Action::UpdatePhone { kind, number } => {
                            after.set_phone(*kind, Some(number.clone()))
                        }
                        Action::DeletePhone { kind } => after.set_phone(*kind, None),
                        Action::CreateEmail { address } | Action::UpdateEmail { address } => {
                            after.email = Some(address.clone())
                        }
                        Action::DeleteEmail => after.email = None,
                        _ => {}
                    }
                }
                let again = plan(&after, r);
                assert!(
                    again.actions.is_empty(),
                    "{r:?} from {s:?}: {:?}",
                    again.actions
                );
                assert_eq!(again.outcome(), Ok(Outcome::Unchanged));
            }
        }
    }

    #[test]
    fn from_graph_reads_types_and_state() {
        let phones = vec![
            PhoneMethod {
                id: PhoneType::Mobile.method_id().into(),
                phone_number: Some(M1.into()),
                phone_type: Some("mobile".into()),
                sms_sign_in_state: Some("ready".into()),
            },
            PhoneMethod {
                id: "x".into(),
                phone_number: Some(O1.into()),
                phone_type: Some("office".into()),
                sms_sign_in_state: None,
            },
            PhoneMethod {
                id: PhoneType::AlternateMobile.method_id().into(),
                phone_number: Some(A1.into()),
                phone_type: None,
                sms_sign_in_state: None,
            },
        ];
        let emails = vec![EmailMethod {
            id: "e1".into(),
            email_address: Some("a@x.com".into()),
        }];
        let c = CurrentMethods::from_graph(&phones, &emails, Some("sms".into()));
        assert_eq!(c.mobile.as_deref(), Some(M1));
        assert_eq!(c.office.as_deref(), Some(O1));
        assert_eq!(c.alternate_mobile.as_deref(), Some(A1));
        assert_eq!(c.email.as_deref(), Some("a@x.com"));
        assert_eq!(c.email_id.as_deref(), Some("e1"));
        assert!(c.sms_sign_in_enabled());
        assert_eq!(c.default_method.as_deref(), Some("sms"));
    }
}
