//! The plan's cases: current methods and a request in, decisions and writes out.

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
        temporary_access_pass: None,
        reply_to: None,
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

/// One case of the cross-method rules: what the user has, what the row asks, what the plan does.
struct Case {
    name: &'static str,
    current: CurrentMethods,
    request: Request,
    actions: Vec<&'static str>,
    outcome: Result<Outcome, Reason>,
    /// A word the rejection's detail must contain.
    detail: Option<&'static str>,
}

fn case(name: &'static str, current: CurrentMethods, request: Request) -> Case {
    Case {
        name,
        current,
        request,
        actions: vec![],
        outcome: Ok(Outcome::Unchanged),
        detail: None,
    }
}

impl Case {
    fn does(mut self, actions: &[&'static str], outcome: Outcome) -> Case {
        self.actions = actions.to_vec();
        self.outcome = Ok(outcome);
        self
    }

    fn rejects(mut self, reason: Reason, detail: Option<&'static str>) -> Case {
        self.outcome = Err(reason);
        self.detail = detail;
        self
    }
}

fn check(cases: Vec<Case>) {
    for c in cases {
        let p = plan(&c.current, &c.request);
        assert_eq!(labels(&p), c.actions, "{}", c.name);
        let outcome = p.outcome();
        assert_eq!(
            outcome.clone().map_err(|r| r.reason),
            c.outcome,
            "{}",
            c.name
        );
        if let (Some(word), Err(rej)) = (c.detail, outcome) {
            assert!(rej.detail.contains(word), "{}: {}", c.name, rej.detail);
        }
        if c.outcome.is_err() {
            assert!(
                p.actions.is_empty(),
                "{}: a rejected row writes nothing",
                c.name
            );
        }
    }
}

fn with(methods: Methods, forced_update: bool, forced_removal: bool) -> Request {
    req(methods, forced_update, forced_removal)
}

fn mobile(v: Option<&str>) -> Methods {
    Methods {
        mobile: d(v),
        ..Methods::default()
    }
}

fn alternate(v: Option<&str>) -> Methods {
    Methods {
        alternate_mobile: d(v),
        ..Methods::default()
    }
}

fn office(v: Option<&str>) -> Methods {
    Methods {
        office: d(v),
        ..Methods::default()
    }
}

fn default_is(mut c: CurrentMethods, method: Option<&str>) -> CurrentMethods {
    c.default_method = method.map(str::to_string);
    c
}

fn sms_state(mut c: CurrentMethods, state: SmsSignInState) -> CurrentMethods {
    c.sms_sign_in_state = Some(state);
    c
}

fn sms(mut r: Request, s: SmsSignIn) -> Request {
    r.sms_sign_in = Some(s);
    r
}

fn set_default(mut r: Request, m: DefaultMethod) -> Request {
    r.default_method = Some(m);
    r
}

#[test]
fn alternate_requires_mobile() {
    let none = CurrentMethods::default;
    check(vec![
        case(
            "alternate, no mobile anywhere",
            none(),
            with(alternate(Some(A1)), false, false),
        )
        .rejects(Reason::AlternateRequiresMobile, None),
        case(
            "alternate, mobile exists",
            cur(Some(M1), None, None),
            with(alternate(Some(A1)), false, false),
        )
        .does(
            &["alternateMobile:create(+44 770****123)"],
            Outcome::Created,
        ),
        case(
            "deleting the mobile under an alternate",
            cur(Some(M1), Some(A1), None),
            with(mobile(None), false, true),
        )
        .rejects(Reason::AlternateRequiresMobile, Some("cannot be removed")),
        case(
            "deleting both: alternate first",
            cur(Some(M1), Some(A1), None),
            with(
                Methods {
                    mobile: d(None),
                    alternate_mobile: d(None),
                    ..Methods::default()
                },
                false,
                true,
            ),
        )
        .does(
            &["alternateMobile:delete", "mobile:delete"],
            Outcome::Deleted,
        ),
        case(
            "an alternate alone, not managed: left alone",
            cur(None, Some(A1), None),
            with(office(Some(O1)), false, false),
        )
        .does(&["office:create(+31 201***567)"], Outcome::Created),
        case(
            "managing the alternate (unchanged) with no mobile",
            cur(None, Some(A1), None),
            with(alternate(Some(A1)), false, false),
        )
        .rejects(Reason::AlternateRequiresMobile, None),
        case(
            "the mobile given with it fixes it",
            cur(None, Some(A1), None),
            with(mobile(Some(M1)), false, false),
        )
        .does(&["mobile:create(+1 555****234)"], Outcome::Created),
    ]);
}

#[test]
fn default_method_conflicts() {
    let sms_default = default_is(cur(Some(M1), None, Some(O1)), Some("sms"));
    let office_default = default_is(cur(Some(M1), None, Some(O1)), Some("voiceOffice"));
    let delete_office = with(office(None), false, true);
    check(vec![
        case(
            "deleting the mobile that is the default",
            sms_default.clone(),
            with(mobile(None), false, true),
        )
        .rejects(Reason::DefaultMethodConflict, Some("'sms'")),
        case(
            "deleting the office while the default is sms",
            sms_default,
            delete_office.clone(),
        )
        .does(&["office:delete"], Outcome::Deleted),
        case(
            "voiceOffice protects the office",
            office_default.clone(),
            delete_office.clone(),
        )
        .rejects(Reason::DefaultMethodConflict, Some("'voiceOffice'")),
        case(
            "moving the default away first: PATCH before DELETE",
            office_default.clone(),
            set_default(delete_office.clone(), DefaultMethod::VoiceMobile),
        )
        .does(
            &["defaultMethod:set(voiceMobile)", "office:delete"],
            Outcome::Updated,
        ),
        case(
            "an unknown default is left to Graph",
            default_is(office_default, None),
            delete_office,
        )
        .does(&["office:delete"], Outcome::Deleted),
    ]);
}

#[test]
fn sms_sign_in() {
    let enable = sms(req(Methods::default(), false, false), SmsSignIn::Enable);
    let disable = sms(req(Methods::default(), false, false), SmsSignIn::Disable);
    let mobile_only = || cur(Some(M1), None, None);
    check(vec![
        case(
            "enable with no mobile at all",
            CurrentMethods::default(),
            enable.clone(),
        )
        .rejects(Reason::InvalidRow, None),
        case(
            "enable, mobile present, not enabled",
            sms_state(mobile_only(), SmsSignInState::NotEnabled),
            enable.clone(),
        )
        .does(&["smsSignIn:enable"], Outcome::Updated),
        case(
            "enable, already ready",
            sms_state(mobile_only(), SmsSignInState::Ready),
            enable.clone(),
        ),
        case(
            "enable with the mobile created in the same row: after it",
            CurrentMethods::default(),
            sms(with(mobile(Some(M1)), false, false), SmsSignIn::Enable),
        )
        .does(
            &["mobile:create(+1 555****234)", "smsSignIn:enable"],
            Outcome::Created,
        ),
        case(
            "disable when ready",
            sms_state(mobile_only(), SmsSignInState::Ready),
            disable.clone(),
        )
        .does(&["smsSignIn:disable"], Outcome::Updated),
        case(
            "disable when not enabled",
            sms_state(mobile_only(), SmsSignInState::NotEnabled),
            disable.clone(),
        ),
        case("disable with no mobile", CurrentMethods::default(), disable),
    ]);
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
                    Action::CreatePhone { kind, number } | Action::UpdatePhone { kind, number } => {
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
            sms_sign_in_state: Some(SmsSignInState::Ready),
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

fn tap_req(forced_update: bool) -> Request {
    let mut r = req(
        Methods {
            mobile: d(Some(M1)),
            ..Methods::default()
        },
        forced_update,
        false,
    );
    r.temporary_access_pass = Some(TapRequest {
        lifetime_in_minutes: 480,
        start_date_time: None,
        is_usable_once: true,
    });
    r
}

#[test]
fn a_pass_is_created_last_when_the_user_has_none() {
    let p = plan(&cur(None, None, None), &tap_req(false));
    assert_eq!(
        labels(&p),
        [
            "mobile:create(+1 555****234)",
            "temporaryAccessPass:create(480 min, once)"
        ]
    );
    assert_eq!(p.outcome(), Ok(Outcome::Created));
    assert_eq!(p.describe(), "mobile=created temporaryAccessPass=created");
}

#[test]
fn an_existing_pass_is_tap_exists_but_the_other_writes_go_on() {
    let mut c = cur(None, None, None);
    c.tap = Some(ExistingPass {
        id: "t1".into(),
        created: None,
    });
    let p = plan(&c, &tap_req(false));
    assert_eq!(labels(&p), ["mobile:create(+1 555****234)"]);
    assert_eq!(p.outcome().map_err(|r| r.reason), Err(Reason::TapExists));
    // forcedUpdate: delete, then create.
    let p = plan(&c, &tap_req(true));
    assert_eq!(
        labels(&p),
        [
            "mobile:create(+1 555****234)",
            "temporaryAccessPass:delete",
            "temporaryAccessPass:create(480 min, once)"
        ]
    );
    assert_eq!(p.outcome(), Ok(Outcome::Created));
    // The request's own undelivered pass is replaced without forcedUpdate.
    c.tap_is_ours = true;
    let p = plan(&c, &tap_req(false));
    assert!(labels(&p).contains(&"temporaryAccessPass:delete".to_string()));
    assert!(p.deferred.is_none());
}

#[test]
fn a_policy_that_is_off_refuses_the_pass_only() {
    let mut c = cur(None, None, None);
    c.tap_policy_off = true;
    let p = plan(&c, &tap_req(false));
    assert_eq!(labels(&p), ["mobile:create(+1 555****234)"]);
    assert_eq!(
        p.outcome().map_err(|r| r.reason),
        Err(Reason::TapNotAllowedByPolicy)
    );
}
