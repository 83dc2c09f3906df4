//! Executes a [`Plan`] against Graph: one read (phone methods, plus email / sign-in preferences
//! only when the request manages them), then only the needed writes, in order.
//!
//! SMS sign-in conflicts do not abort a user. Graph answers a mobile create/update whose number
//! another user holds for SMS sign-in with 409 `phoneNumberNotUnique` and usually writes the
//! method anyway (or 201 with `smsSignInState: phoneNumberNotUnique`): the methods are read again,
//! a mobile that is there counts as written, and the user's other methods go on. The conflict is
//! the row's outcome (`sms_signin_number_not_unique`) only when the row asked `SmsSignIn=enable`;
//! otherwise it is a note on the outcome.

use crate::graph::error::{ConfigFault, GraphError};
use crate::graph::permissions::Feature;
use crate::graph::phone_methods::{PhoneType, SmsSignInState};
use crate::graph::GraphClient;
use crate::message::{Request, SmsSignIn};
use crate::plan::{
    plan, same_email, summarise, Action, CurrentMethods, Decision, Plan, Rejection, Subject,
};
use crate::reason::Outcome;
use crate::tap::IssuedPass;

/// What happened to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserResult {
    /// The outcome, or the rejection (reason + masked detail).
    pub outcome: Result<Outcome, Rejection>,
    /// Per-method decisions as finally carried out.
    pub decisions: Vec<Decision>,
    /// Labels of the writes Graph accepted, in order (numbers masked).
    pub actions: Vec<String>,
    /// Things worth telling (e.g. a new mobile whose SMS sign-in number is not unique).
    pub notes: Vec<String>,
    /// The failure may pass if tried later (429/5xx/network/token): the queue should retry.
    pub transient: bool,
    /// The failure is the deployment's, not the user's: retry once an administrator fixed it.
    pub config_fault: Option<ConfigFault>,
    /// The Temporary Access Pass Graph issued (a secret: its `Debug` is redacted). The caller
    /// delivers it to the one place the administrator chose, and nowhere else.
    pub pass: Option<IssuedPass>,
}

impl UserResult {
    fn rejected(
        rejection: Rejection,
        decisions: Vec<Decision>,
        actions: Vec<String>,
        notes: Vec<String>,
        transient: bool,
    ) -> UserResult {
        UserResult {
            outcome: Err(rejection),
            decisions,
            actions,
            notes,
            transient,
            config_fault: None,
            pass: None,
        }
    }

    /// A failure that may pass if tried later, before or after the user was touched (a pass
    /// delivery that failed): retried by the queue, `retries_exhausted` in the end.
    pub fn transient_failure(detail: String) -> UserResult {
        UserResult::rejected(
            Rejection::new(crate::reason::Reason::RetriesExhausted, detail),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            true,
        )
    }

    fn from_error(
        e: &GraphError,
        decisions: Vec<Decision>,
        actions: Vec<String>,
        notes: Vec<String>,
    ) -> UserResult {
        let mut detail = e.to_string();
        if !actions.is_empty() {
            detail.push_str("; done before the failure: ");
            detail.push_str(&actions.join(", "));
        }
        let mut r = UserResult::rejected(
            Rejection::new(e.reason(), detail),
            decisions,
            actions,
            notes,
            e.is_transient(),
        );
        r.config_fault = e.configuration().cloned();
        r
    }

    /// Human detail: per-method decisions, notes, and the rejection's text.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Err(r) = &self.outcome {
            parts.push(r.detail.clone());
        }
        let d = crate::plan::describe_decisions(&self.decisions);
        if !d.is_empty() {
            parts.push(d);
        }
        parts.extend(self.notes.iter().cloned());
        parts.join("; ")
    }
}

/// Whether the request manages a phone method, SMS sign-in or the default method (all of which
/// plan from the phone methods).
pub(crate) fn manages_phones(req: &Request) -> bool {
    let m = &req.methods;
    m.mobile.is_some()
        || m.alternate_mobile.is_some()
        || m.office.is_some()
        || req.sms_sign_in.is_some()
        || req.default_method.is_some()
}

/// Whether the phone methods are read: when the request manages one of them, or nothing else
/// (a request that manages nothing still reads, so that a missing user is reported).
fn reads_phones(req: &Request) -> bool {
    manages_phones(req) || (req.methods.email.is_none() && req.temporary_access_pass.is_none())
}

/// The features (and so the Graph permissions) a request uses.
pub fn features(req: &Request) -> Vec<Feature> {
    let mut f = Vec::new();
    if reads_phones(req) {
        f.push(Feature::PhoneMethods);
    }
    if req.methods.email.is_some() {
        f.push(Feature::EmailMethods);
    }
    if req.default_method.is_some() {
        f.push(Feature::DefaultMethod);
    }
    if req.temporary_access_pass.is_some() {
        f.push(Feature::Tap);
    }
    f
}

/// What the caller knows beyond the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions<'a> {
    /// The method id of a Temporary Access Pass an earlier try of this very request made and
    /// recorded, but never delivered (the worker's pending record): nobody has it, so it is
    /// replaced whatever `forcedUpdate` says.
    pub own_pass_id: Option<&'a str>,
}

/// Reads what [`plan`] needs: phone methods unless the request manages only the email; email
/// only if managed; the default method (beta `signInPreferences`) only if the request sets one.
pub async fn read_current(
    client: &GraphClient,
    req: &Request,
) -> Result<CurrentMethods, GraphError> {
    read_current_with(client, req, &ApplyOptions::default()).await
}

/// [`read_current`], with what the caller knows about passes of earlier tries.
pub async fn read_current_with(
    client: &GraphClient,
    req: &Request,
    opts: &ApplyOptions<'_>,
) -> Result<CurrentMethods, GraphError> {
    let phones = if reads_phones(req) {
        client.list_phone_methods(&req.user).await?
    } else {
        Vec::new()
    };
    let emails = if req.methods.email.is_some() {
        client.list_email_methods(&req.user).await?
    } else {
        Vec::new()
    };
    let default = if req.default_method.is_some() {
        client
            .get_sign_in_preferences(&req.user)
            .await?
            .user_preferred_method_for_secondary_authentication
    } else {
        None
    };
    let mut current = CurrentMethods::from_graph(&phones, &emails, default);
    if req.temporary_access_pass.is_some() {
        // The policy once per client (a run, a cold start); then the user's pass.
        current.tap_policy_off = client.tap_policy().await?.is_some_and(|p| !p.enabled);
        if !current.tap_policy_off {
            current.tap = client
                .list_tap_methods(&req.user)
                .await?
                .into_iter()
                .find(|t| !t.is_spent())
                .map(|t| t.existing());
            current.tap_is_ours = match (&current.tap, opts.own_pass_id) {
                (Some(t), Some(own)) => t.id == own,
                _ => false,
            };
        }
    }
    Ok(current)
}

/// Reads, plans and applies one request. The token's permissions are checked first, so a
/// missing one is a configuration fault before the user is touched.
pub async fn apply(client: &GraphClient, req: &Request) -> UserResult {
    apply_with(client, req, &ApplyOptions::default()).await
}

/// [`apply`] with what the caller knows beyond the request.
pub async fn apply_with(
    client: &GraphClient,
    req: &Request,
    opts: &ApplyOptions<'_>,
) -> UserResult {
    if let Err(e) = client.check_features(&features(req)).await {
        return UserResult::from_error(&e, Vec::new(), Vec::new(), Vec::new());
    }
    let current = match read_current_with(client, req, opts).await {
        Ok(c) => c,
        Err(e) => return UserResult::from_error(&e, Vec::new(), Vec::new(), Vec::new()),
    };
    let p = plan(&current, req);
    execute_plan(client, req, &current, &p).await
}

fn set_decision(decisions: &mut Vec<Decision>, subject: Subject, outcome: Outcome) {
    match decisions.iter_mut().find(|d| d.subject == subject) {
        Some(d) => d.outcome = outcome,
        None => decisions.push(Decision { subject, outcome }),
    }
}

struct Run<'a> {
    client: &'a GraphClient,
    req: &'a Request,
    decisions: Vec<Decision>,
    done: Vec<String>,
    notes: Vec<String>,
    /// `smsSignInState` of a mobile created in this run.
    fresh_mobile_state: Option<Option<SmsSignInState>>,
    email_id: String,
    /// Graph refused SMS sign-in for the mobile's number (another user holds it): the
    /// rejection the row ends with if it asked for SMS sign-in.
    sms_conflict: Option<GraphError>,
    /// The Temporary Access Pass issued in this run.
    pass: Option<IssuedPass>,
}

impl Run<'_> {
    fn user(&self) -> &str {
        &self.req.user
    }

    fn note_mobile_state(&mut self, state: Option<SmsSignInState>) {
        if state == Some(SmsSignInState::PhoneNumberNotUnique) {
            self.note_sms_conflict(GraphError::SmsSigninNumberNotUnique {
                message: "Graph reports smsSignInState phoneNumberNotUnique for the new mobile"
                    .into(),
            });
        }
        self.fresh_mobile_state = Some(state);
    }

    /// Records that SMS sign-in cannot be had for this mobile (once).
    fn note_sms_conflict(&mut self, e: GraphError) {
        if self.sms_conflict.is_none() {
            self.notes.push(
                "the mobile is written, but another user uses this number for SMS sign-in, so SMS sign-in is not active for this user (the number still serves MFA)".into(),
            );
            self.sms_conflict = Some(e);
        }
    }

    /// After a 409 `phoneNumberNotUnique` on a mobile create/update: Graph usually writes the
    /// method anyway. Reads the methods again; the mobile counts as written when it holds
    /// `number`.
    async fn mobile_written_despite_conflict(
        &mut self,
        number: &str,
        e: GraphError,
    ) -> Result<bool, GraphError> {
        let phones = self.client.list_phone_methods(self.user()).await?;
        let mobile = phones
            .into_iter()
            .find(|p| p.kind() == Some(PhoneType::Mobile));
        match mobile {
            Some(m)
                if m.phone_number
                    .as_deref()
                    .is_some_and(|n| crate::phone::same(n, number)) =>
            {
                self.fresh_mobile_state = Some(m.sms_sign_in_state);
                self.note_sms_conflict(e);
                Ok(true)
            }
            _ => Err(e),
        }
    }

    async fn create_phone(
        &mut self,
        action: &Action,
        kind: PhoneType,
        number: &str,
    ) -> Result<(), GraphError> {
        match self
            .client
            .create_phone_method(self.user(), kind, number)
            .await
        {
            Ok(m) => {
                self.done.push(action.label());
                if kind == PhoneType::Mobile {
                    self.note_mobile_state(m.sms_sign_in_state);
                }
                Ok(())
            }
            Err(e @ GraphError::SmsSigninNumberNotUnique { .. }) if kind == PhoneType::Mobile => {
                self.mobile_written_despite_conflict(number, e).await?;
                self.done.push(action.label());
                Ok(())
            }
            Err(GraphError::MethodAlreadyExists { after_retry, .. }) => {
                // A duplicate delivery (or our own retried POST) got there first: read again.
                let phones = self.client.list_phone_methods(self.user()).await?;
                let existing = phones.into_iter().find(|p| p.kind() == Some(kind));
                let subject = Subject::from_phone(kind);
                match existing {
                    Some(p)
                        if p.phone_number
                            .as_deref()
                            .is_some_and(|n| crate::phone::same(n, number)) =>
                    {
                        if after_retry {
                            // Our earlier attempt was applied before its answer was lost.
                            self.done.push(action.label());
                        } else {
                            set_decision(&mut self.decisions, subject, Outcome::Unchanged);
                        }
                        if kind == PhoneType::Mobile {
                            self.fresh_mobile_state = Some(p.sms_sign_in_state);
                        }
                        Ok(())
                    }
                    Some(_) if self.req.policy.forced_update => {
                        self.client
                            .update_phone_method(self.user(), kind, number)
                            .await?;
                        self.done.push(
                            Action::UpdatePhone {
                                kind,
                                number: number.to_string(),
                            }
                            .label(),
                        );
                        set_decision(&mut self.decisions, subject, Outcome::Updated);
                        Ok(())
                    }
                    Some(_) => {
                        set_decision(&mut self.decisions, subject, Outcome::SkippedExists);
                        Ok(())
                    }
                    None => Err(GraphError::Rejected {
                        status: 400,
                        code: "alreadyExists".into(),
                        message: format!(
                            "Graph says the {} method exists but does not list it",
                            kind.as_str()
                        ),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn step(&mut self, action: &Action) -> Result<(), GraphError> {
        let user = self.req.user.clone();
        let c = self.client;
        match action {
            Action::CreatePhone { kind, number } => self.create_phone(action, *kind, number).await,
            Action::UpdatePhone { kind, number } => {
                match c.update_phone_method(&user, *kind, number).await {
                    Ok(()) => {
                        self.done.push(action.label());
                        Ok(())
                    }
                    Err(e @ GraphError::SmsSigninNumberNotUnique { .. })
                        if *kind == PhoneType::Mobile =>
                    {
                        self.mobile_written_despite_conflict(number, e).await?;
                        self.done.push(action.label());
                        Ok(())
                    }
                    Err(GraphError::MethodNotFound { .. }) => {
                        // Deleted meanwhile: create it instead.
                        let create = Action::CreatePhone {
                            kind: *kind,
                            number: number.clone(),
                        };
                        self.create_phone(&create, *kind, number).await?;
                        set_decision(
                            &mut self.decisions,
                            Subject::from_phone(*kind),
                            Outcome::Created,
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::DeletePhone { kind } => match c.delete_phone_method(&user, *kind).await {
                Ok(()) => {
                    self.done.push(action.label());
                    Ok(())
                }
                Err(GraphError::MethodNotFound { after_retry, .. }) => {
                    if after_retry {
                        self.done.push(action.label());
                    } else {
                        set_decision(
                            &mut self.decisions,
                            Subject::from_phone(*kind),
                            Outcome::Unchanged,
                        );
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Action::CreateEmail { address } => match c.create_email_method(&user, address).await {
                Ok(m) => {
                    self.email_id = m.id;
                    self.done.push(action.label());
                    Ok(())
                }
                Err(GraphError::MethodAlreadyExists { after_retry, .. }) => {
                    let emails = c.list_email_methods(&user).await?;
                    match emails.into_iter().next() {
                        Some(e)
                            if e.email_address
                                .as_deref()
                                .is_some_and(|a| same_email(a, address)) =>
                        {
                            if after_retry {
                                self.done.push(action.label());
                            } else {
                                set_decision(
                                    &mut self.decisions,
                                    Subject::Email,
                                    Outcome::Unchanged,
                                );
                            }
                            Ok(())
                        }
                        Some(e) if self.req.policy.forced_update => {
                            c.update_email_method(&user, &e.id, address).await?;
                            self.done.push(
                                Action::UpdateEmail {
                                    address: address.clone(),
                                }
                                .label(),
                            );
                            set_decision(&mut self.decisions, Subject::Email, Outcome::Updated);
                            Ok(())
                        }
                        Some(_) => {
                            set_decision(
                                &mut self.decisions,
                                Subject::Email,
                                Outcome::SkippedExists,
                            );
                            Ok(())
                        }
                        None => Err(GraphError::Rejected {
                            status: 400,
                            code: "alreadyExists".into(),
                            message: "Graph says the email method exists but does not list it"
                                .into(),
                        }),
                    }
                }
                Err(e) => Err(e),
            },
            Action::UpdateEmail { address } => {
                match c.update_email_method(&user, &self.email_id, address).await {
                    Ok(()) => {
                        self.done.push(action.label());
                        Ok(())
                    }
                    Err(GraphError::MethodNotFound { .. }) => {
                        let m = c.create_email_method(&user, address).await?;
                        self.email_id = m.id;
                        self.done.push(
                            Action::CreateEmail {
                                address: address.clone(),
                            }
                            .label(),
                        );
                        set_decision(&mut self.decisions, Subject::Email, Outcome::Created);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::DeleteEmail => match c.delete_email_method(&user, &self.email_id).await {
                Ok(()) => {
                    self.done.push(action.label());
                    Ok(())
                }
                Err(GraphError::MethodNotFound { after_retry, .. }) => {
                    if after_retry {
                        self.done.push(action.label());
                    } else {
                        set_decision(&mut self.decisions, Subject::Email, Outcome::Unchanged);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Action::EnableSmsSignIn => {
                if let Some(state) = &self.fresh_mobile_state {
                    if state.as_ref().is_some_and(SmsSignInState::is_ready) {
                        // Policy enabled it when the mobile was created.
                        set_decision(&mut self.decisions, Subject::SmsSignIn, Outcome::Unchanged);
                        return Ok(());
                    }
                }
                if self.sms_conflict.is_some() {
                    // Graph already said no for this number: asking again would 409 too.
                    return Ok(());
                }
                match c.set_sms_sign_in(&user, true).await {
                    Ok(()) => {
                        self.done.push(action.label());
                        Ok(())
                    }
                    Err(e @ GraphError::SmsSigninNumberNotUnique { .. }) => {
                        // The row's other methods still go on; the row ends with this reason.
                        self.note_sms_conflict(e);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::DisableSmsSignIn => {
                if let Some(state) = &self.fresh_mobile_state {
                    if !state.as_ref().is_some_and(SmsSignInState::is_enabled) {
                        set_decision(&mut self.decisions, Subject::SmsSignIn, Outcome::Unchanged);
                        return Ok(());
                    }
                }
                c.set_sms_sign_in(&user, false).await?;
                self.done.push(action.label());
                Ok(())
            }
            Action::SetDefaultMethod { method } => {
                c.set_default_method(&user, *method).await?;
                self.done.push(action.label());
                Ok(())
            }
            Action::DeleteTap { id } => match c.delete_tap(&user, id).await {
                // Gone meanwhile (expired and cleaned up, or deleted by hand): nothing to do.
                Ok(()) | Err(GraphError::MethodNotFound { .. }) => {
                    self.done.push(action.label());
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Action::CreateTap { request } => {
                let issued = match c.create_tap(&user, request).await {
                    Ok(p) => p,
                    Err(GraphError::MethodAlreadyExists { .. }) => {
                        // A Graph that refuses a second pass instead of replacing it: the pass
                        // there is one this plan meant to replace (or raced in): delete, retry.
                        for t in c.list_tap_methods(&user).await? {
                            match c.delete_tap(&user, &t.id).await {
                                Ok(()) | Err(GraphError::MethodNotFound { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        c.create_tap(&user, request).await?
                    }
                    Err(e) => return Err(e),
                };
                self.done.push(action.label());
                self.pass = Some(issued);
                Ok(())
            }
        }
    }
}

/// Carries out `p` (planned from `current`) for `req.user`. Graph's own refusals (the default
/// method, a non-unique SMS sign-in number, ...) end the run with that reason; nothing loops.
pub async fn execute_plan(
    client: &GraphClient,
    req: &Request,
    current: &CurrentMethods,
    p: &Plan,
) -> UserResult {
    if let Some(r) = &p.rejection {
        return UserResult::rejected(
            r.clone(),
            p.decisions.clone(),
            Vec::new(),
            Vec::new(),
            false,
        );
    }
    let mut run = Run {
        client,
        req,
        decisions: p.decisions.clone(),
        done: Vec::new(),
        notes: Vec::new(),
        fresh_mobile_state: None,
        email_id: current.email_id.clone().unwrap_or_default(),
        sms_conflict: None,
        pass: None,
    };
    for action in &p.actions {
        if let Err(e) = run.step(action).await {
            let mut r = UserResult::from_error(&e, run.decisions, run.done, run.notes);
            r.pass = run.pass;
            return r;
        }
    }
    if let (Some(e), Some(SmsSignIn::Enable)) = (run.sms_conflict.take(), req.sms_sign_in) {
        // The row asked for SMS sign-in and cannot have it; what else it asked for is done.
        run.notes.clear();
        let mut r = UserResult::from_error(&e, run.decisions, run.done, run.notes);
        r.pass = run.pass;
        return r;
    }
    if let Some(deferred) = &p.deferred {
        // A pass the user already has, or the policy refuses: the other writes are made.
        let mut detail = deferred.detail.clone();
        if !run.done.is_empty() {
            detail.push_str("; done: ");
            detail.push_str(&run.done.join(", "));
        }
        let mut r = UserResult::rejected(
            Rejection::new(deferred.reason, detail),
            run.decisions,
            run.done,
            run.notes,
            false,
        );
        r.pass = run.pass;
        return r;
    }
    UserResult {
        outcome: Ok(summarise(&run.decisions)),
        decisions: run.decisions,
        actions: run.done,
        notes: run.notes,
        transient: false,
        config_fault: None,
        pass: run.pass,
    }
}
