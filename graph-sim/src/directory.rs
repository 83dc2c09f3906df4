//! The simulated directory: users, their phone/email methods, default method, SMS sign-in,
//! Temporary Access Passes, and the rules Graph enforces on them. Pure and synchronous; the
//! server holds it behind a mutex.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::config::{SmsConflictAnswer, TapPolicy};
use crate::methods::{self, Held};
use crate::model::{
    IssuedPass, MethodKind, PhoneType, SeedUser, TapState, UserState, WriteRecord, EMAIL_METHOD_ID,
};
use crate::response::GraphError;
use crate::tap::{self, Tap};

const SMS_READY: &str = "ready";
const SMS_NOT_ENABLED: &str = "notEnabled";
const SMS_NOT_UNIQUE: &str = "phoneNumberNotUnique";
const SMS_NOT_SUPPORTED: &str = "notSupported";
const SMS_NOT_ALLOWED: &str = "notAllowedByPolicy";

/// Values Graph accepts for `userPreferredMethodForSecondaryAuthentication`.
const DEFAULT_METHODS: [&str; 7] = [
    "push",
    "oath",
    "voiceMobile",
    "voiceAlternateMobile",
    "voiceOffice",
    "sms",
    "none",
];

#[derive(Debug, Clone)]
struct User {
    id: String,
    upn: String,
    mobile: Option<String>,
    alternate_mobile: Option<String>,
    office: Option<String>,
    email: Option<String>,
    /// The mobile's `smsSignInState` (meaningful only with a mobile).
    sms_state: &'static str,
    default_method: Option<String>,
    /// Until then the user answers 404 (directory replication of a new user).
    visible_from: Option<Instant>,
    /// Methods beyond phones and email, each with its id (listing and report only; a
    /// [`MethodKind::TemporaryAccessPass`] entry is there exactly while `tap` is, with its id).
    methods: Vec<(MethodKind, String)>,
    /// The user's Temporary Access Pass (one at most).
    tap: Option<Tap>,
}

impl User {
    fn phone(&self, t: PhoneType) -> &Option<String> {
        match t {
            PhoneType::Mobile => &self.mobile,
            PhoneType::AlternateMobile => &self.alternate_mobile,
            PhoneType::Office => &self.office,
        }
    }

    fn phone_mut(&mut self, t: PhoneType) -> &mut Option<String> {
        match t {
            PhoneType::Mobile => &mut self.mobile,
            PhoneType::AlternateMobile => &mut self.alternate_mobile,
            PhoneType::Office => &mut self.office,
        }
    }

    /// `sms_shown`: the mobile's `smsSignInState` as Graph reports it (see
    /// [`Directory::sms_state_shown`]).
    fn phone_json(&self, t: PhoneType, sms_shown: &'static str) -> Option<Value> {
        self.phone(t).as_ref().map(|number| {
            let sms = if t == PhoneType::Mobile {
                sms_shown
            } else {
                SMS_NOT_SUPPORTED
            };
            json!({
                "id": t.method_id(),
                "phoneNumber": number,
                "phoneType": t.as_str(),
                "smsSignInState": sms,
            })
        })
    }

    fn email_json(&self) -> Option<Value> {
        self.email
            .as_ref()
            .map(|e| json!({"id": EMAIL_METHOD_ID, "emailAddress": e}))
    }

    fn snapshot(&self, sms_shown: &'static str) -> UserState {
        UserState {
            id: self.id.clone(),
            upn: self.upn.clone(),
            mobile: self.mobile.clone(),
            alternate_mobile: self.alternate_mobile.clone(),
            office: self.office.clone(),
            email: self.email.clone(),
            sms_sign_in: self.mobile.as_ref().map(|_| sms_shown.to_string()),
            default_method: self.default_method.clone(),
            methods: self.methods.iter().map(|(k, _)| *k).collect(),
        }
    }
}

/// Graph's phone format: `+{cc} {number}[x{ext}]`, digits only, at most 15 digits before the
/// extension.
pub(crate) fn is_valid_phone(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else {
        return false;
    };
    let Some((cc, rest)) = rest.split_once(' ') else {
        return false;
    };
    let (number, ext) = match rest.split_once('x') {
        Some((n, e)) => (n, Some(e)),
        None => (rest, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(cc)
        && cc.len() <= 3
        && !cc.starts_with('0')
        && digits(number)
        && number.len() >= 4
        && cc.len() + number.len() <= 15
        && ext.is_none_or(|e| digits(e) && e.len() <= 10)
}

/// The key SMS sign-in uniqueness is judged on: the digits before any extension.
fn sms_key(number: &str) -> String {
    let main = number.split('x').next().unwrap_or(number);
    main.chars().filter(char::is_ascii_digit).collect()
}

fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
}

fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, GraphError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::bad_request(format!(
            "Property '{name}' must be a string."
        ))),
    }
}

fn object_body(body: Option<&Value>) -> Result<&Value, GraphError> {
    match body {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(GraphError::bad_request(
            "A JSON object is required in the request body.",
        )),
    }
}

/// 400 for a number not in Graph's form. No source shows Graph quoting the refused number (its
/// texts do quote other caller-supplied values: the method id, the UPN in a 404); with
/// `echo_numbers` the text quotes it all the same, so that a client's masking of error texts is
/// exercised end to end.
fn invalid_phone(number: &str, echo_numbers: bool) -> GraphError {
    if echo_numbers {
        GraphError::bad_request(format!(
            "invalidPhoneNumber: the phone number '{number}' is not in a valid format; expected '+{{countryCode}} {{number}}x{{extension}}'."
        ))
    } else {
        GraphError::bad_request(
            "invalidPhoneNumber: the phone number is not in a valid format; expected '+{countryCode} {number}x{extension}'.",
        )
    }
}

/// 409 `phoneNumberNotUnique` (create/update of a mobile whose number another user holds for SMS
/// sign-in, and `enableSmsSignIn` with such a number). Status and code: "If the number is already
/// used by another user for SMS Sign-In, Graph returns a 409 Conflict with error code
/// "phoneNumberNotUnique". However, the phone method itself (for regular MFA) is typically created
/// or updated successfully despite this error." (realmjoin/realmjoin-runbooks PR #318,
/// user/security/set-or-remove-mobile-phone-MFA.ps1; microsoft/MTC_FLWTeamsScale
/// scripts/EnableSMS.ps1 handles the same code from both calls). No source shows the message text.
fn number_not_unique(number: &str, echo_numbers: bool) -> GraphError {
    let message = if echo_numbers {
        format!("The phone number '{number}' is already used for SMS sign-in by another user.")
    } else {
        "The phone number is already used for SMS sign-in by another user.".to_string()
    };
    GraphError::new(StatusCode::CONFLICT, "phoneNumberNotUnique", message)
}

/// The 400 for deleting the phone behind the user's default method. Graph's text changed over
/// time; both wordings are used, by turns (users of even and odd index), so a client must
/// recognise either:
/// - "The requested authentication method id of [{id}] matches the user's current default
///   authentication method, and cannot be deleted until the default authentication method is
///   changed" (microsoftgraph/microsoft-graph-docs-contrib#1888, 2022);
/// - "Cannot delete default method with other methods configured. Please change default method
///   before deletion." (microsoftgraph/microsoft-graph-docs-contrib#2913, 2021).
fn default_method_refusal(idx: usize, t: PhoneType) -> GraphError {
    if idx.is_multiple_of(2) {
        GraphError::bad_request(format!(
            "The requested authentication method id of [{}] matches the user's current default authentication method, and cannot be deleted until the default authentication method is changed",
            t.method_id()
        ))
    } else {
        GraphError::bad_request(
            "Cannot delete default method with other methods configured. Please change default method before deletion.",
        )
    }
}

/// Users and their methods, plus the write log.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    users: Vec<User>,
    /// Lower-cased object id and UPN -> index in `users`.
    index: HashMap<String, usize>,
    /// SMS sign-in number key -> index of the user whose mobile has it `ready`.
    sms_owner: HashMap<String, usize>,
    write_log: Vec<WriteRecord>,
    pub(crate) sms_sign_in_policy: bool,
    /// Lower-cased UPNs and object ids the SMS sign-in policy targets; empty: everyone.
    pub(crate) sms_policy_users: HashSet<String>,
    pub(crate) sms_conflict_answer: SmsConflictAnswer,
    /// Quote the phone number in error texts (see [`invalid_phone`]).
    pub(crate) echo_numbers: bool,
    pub(crate) auto_create_users: bool,
    /// Lower-cased group id -> its members (user UPNs or ids, or group ids), as added.
    groups: HashMap<String, Vec<String>>,
    /// The tenant has system-preferred MFA on (see [`crate::SimConfig::system_preferred_mfa`]).
    pub(crate) system_preferred: bool,
    /// The Temporary Access Pass policy (see [`Directory::set_tap_policy`]).
    tap_policy: TapPolicy,
    /// Every pass issued, in order.
    issued: Vec<IssuedPass>,
}

impl Directory {
    pub(crate) fn new(sms_sign_in_policy: bool, auto_create_users: bool) -> Self {
        Directory {
            sms_sign_in_policy,
            auto_create_users,
            ..Directory::default()
        }
    }

    /// Targets the SMS sign-in policy at these users only (empty: everyone).
    pub(crate) fn set_sms_policy_users(&mut self, users: &[String]) {
        self.sms_policy_users = users.iter().map(|u| u.to_lowercase()).collect();
    }

    /// Whether the authentication methods policy enables SMS sign-in for the user.
    fn in_sms_policy(&self, idx: usize) -> bool {
        let u = &self.users[idx];
        self.sms_sign_in_policy
            && (self.sms_policy_users.is_empty()
                || self.sms_policy_users.contains(&u.id.to_lowercase())
                || self.sms_policy_users.contains(&u.upn.to_lowercase()))
    }

    /// The mobile's `smsSignInState` as Graph reports it: a user the policy does not enable
    /// for SMS sign-in reads `notAllowedByPolicy` (the `smsSignInState` values of
    /// https://learn.microsoft.com/en-us/graph/api/resources/phoneauthenticationmethod).
    fn sms_state_shown(&self, idx: usize) -> &'static str {
        let state = self.users[idx].sms_state;
        if state == SMS_NOT_ENABLED && !self.in_sms_policy(idx) {
            SMS_NOT_ALLOWED
        } else {
            state
        }
    }

    fn phone_json(&self, idx: usize, t: PhoneType) -> Option<Value> {
        self.users[idx].phone_json(t, self.sms_state_shown(idx))
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.index.get(&key.to_lowercase()).copied()
    }

    fn push_user(&mut self, user: User) -> usize {
        let idx = self.users.len();
        self.index.insert(user.id.to_lowercase(), idx);
        self.index.insert(user.upn.to_lowercase(), idx);
        self.users.push(user);
        idx
    }

    /// Adds (or replaces, matched by id or UPN) a user.
    pub(crate) fn add_user(&mut self, seed: SeedUser) {
        let existing = seed
            .id
            .as_deref()
            .and_then(|id| self.find(id))
            .or_else(|| self.find(&seed.upn));
        let id = seed
            .id
            .clone()
            .or_else(|| existing.map(|i| self.users[i].id.clone()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut user = User {
            id,
            upn: seed.upn.clone(),
            mobile: seed.mobile.clone(),
            alternate_mobile: seed.alternate_mobile.clone(),
            office: seed.office.clone(),
            email: seed.email.clone(),
            sms_state: SMS_NOT_ENABLED,
            default_method: seed.default_method.clone(),
            visible_from: None,
            methods: Vec::new(),
            tap: None,
        };
        for kind in &seed.methods {
            let id = uuid::Uuid::new_v4().to_string();
            if *kind == MethodKind::TemporaryAccessPass {
                // One pass per user ("Users can only have one Temporary Access Pass
                // authentication method", the resource page).
                if user.tap.is_some() {
                    continue;
                }
                user.tap = Some(Tap::seeded(id.clone()));
            }
            user.methods.push((*kind, id));
        }
        let idx = match existing {
            Some(i) => {
                self.release_sms(i);
                let old = &self.users[i];
                self.index.remove(&old.id.to_lowercase());
                self.index.remove(&old.upn.to_lowercase());
                self.index.insert(user.id.to_lowercase(), i);
                self.index.insert(user.upn.to_lowercase(), i);
                self.users[i] = user;
                i
            }
            None => self.push_user(user),
        };
        if seed.sms_sign_in_enabled {
            self.try_enable_sms(idx);
        }
    }

    /// Resolves a path's `{id}` (object id or UPN, case-insensitive), creating the user when
    /// `auto_create_users` is on and the id looks like a UPN.
    ///
    /// A user still replicating ([`Directory::hide_until`]) answers 404 like an unknown one: a
    /// user created seconds ago can be missing from Graph for a while (see the crate docs,
    /// "Replication").
    pub(crate) fn resolve(&mut self, key: &str) -> Result<usize, GraphError> {
        if let Some(i) = self.find(key) {
            if self.users[i]
                .visible_from
                .is_some_and(|t| Instant::now() < t)
            {
                return Err(GraphError::user_not_found(key));
            }
            return Ok(i);
        }
        if self.auto_create_users && key.contains('@') {
            return Ok(self.push_user(User {
                id: uuid::Uuid::new_v4().to_string(),
                upn: key.to_string(),
                mobile: None,
                alternate_mobile: None,
                office: None,
                email: None,
                sms_state: SMS_NOT_ENABLED,
                default_method: None,
                visible_from: None,
                methods: Vec::new(),
                tap: None,
            }));
        }
        Err(GraphError::user_not_found(key))
    }

    /// Adds (or replaces) a group with these members: user UPNs or object ids, or group ids
    /// (nested groups).
    pub(crate) fn add_group(&mut self, id: &str, members: &[String]) {
        self.groups.insert(id.to_lowercase(), members.to_vec());
    }

    /// The users of a group: its direct members, or with `transitive` those of nested groups
    /// too (each once), as `{"@odata.type", "id", "userPrincipalName"}`, in the order added.
    pub(crate) fn group_members(
        &self,
        id: &str,
        transitive: bool,
    ) -> Result<Vec<Value>, GraphError> {
        if !self.groups.contains_key(&id.to_lowercase()) {
            return Err(GraphError::user_not_found(id));
        }
        let mut out = Vec::new();
        let mut seen_users = HashSet::new();
        let mut seen_groups = HashSet::new();
        let mut stack = vec![id.to_lowercase()];
        let now = Instant::now();
        while let Some(g) = stack.pop() {
            if !seen_groups.insert(g.clone()) {
                continue;
            }
            let Some(members) = self.groups.get(&g) else {
                continue;
            };
            for m in members {
                let key = m.to_lowercase();
                if self.groups.contains_key(&key) {
                    if transitive {
                        stack.push(key);
                    }
                    continue;
                }
                if let Some(i) = self.find(&key) {
                    let u = &self.users[i];
                    if u.visible_from.is_some_and(|t| now < t) || !seen_users.insert(i) {
                        continue;
                    }
                    out.push(json!({
                        "@odata.type": "#microsoft.graph.user",
                        "id": u.id,
                        "userPrincipalName": u.upn,
                    }));
                }
            }
        }
        Ok(out)
    }

    /// Makes an existing user answer 404 until `when`. Returns false when there is no such user.
    pub(crate) fn hide_until(&mut self, key: &str, when: Instant) -> bool {
        match self.find(key) {
            Some(i) => {
                self.users[i].visible_from = Some(when);
                true
            }
            None => false,
        }
    }

    pub(crate) fn user(&self, key: &str) -> Option<UserState> {
        self.find(key)
            .map(|i| self.users[i].snapshot(self.sms_state_shown(i)))
    }

    pub(crate) fn users(&self) -> Vec<UserState> {
        (0..self.users.len())
            .map(|i| self.users[i].snapshot(self.sms_state_shown(i)))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }

    pub(crate) fn write_log(&self) -> Vec<WriteRecord> {
        self.write_log.clone()
    }

    pub(crate) fn clear_write_log(&mut self) {
        self.write_log.clear();
    }

    fn record(&mut self, idx: usize, method: &str, op: &str, value: Option<String>) {
        let u = &self.users[idx];
        self.write_log.push(WriteRecord {
            user_id: u.id.clone(),
            upn: u.upn.clone(),
            method: method.to_string(),
            op: op.to_string(),
            value,
        });
    }

    /// Drops the user's claim on its SMS sign-in number, if any.
    fn release_sms(&mut self, idx: usize) {
        if let Some(m) = &self.users[idx].mobile {
            let key = sms_key(m);
            if self.sms_owner.get(&key) == Some(&idx) {
                self.sms_owner.remove(&key);
            }
        }
    }

    /// Enables SMS sign-in when the number is free: `ready`, else `phoneNumberNotUnique`.
    /// Returns whether it is now ready.
    fn try_enable_sms(&mut self, idx: usize) -> bool {
        let Some(m) = self.users[idx].mobile.clone() else {
            return false;
        };
        let key = sms_key(&m);
        match self.sms_owner.get(&key) {
            Some(&owner) if owner != idx => {
                self.users[idx].sms_state = SMS_NOT_UNIQUE;
                false
            }
            _ => {
                self.sms_owner.insert(key, idx);
                self.users[idx].sms_state = SMS_READY;
                true
            }
        }
    }

    // ----- users -----

    pub(crate) fn get_user(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let u = &self.users[i];
        Ok(json!({"id": u.id, "userPrincipalName": u.upn}))
    }

    /// One page of users (`skip` users skipped, at most `top`), in insertion order, and whether
    /// more follow.
    pub(crate) fn list_users(&self, skip: usize, top: usize) -> (Vec<Value>, bool) {
        let now = Instant::now();
        let page = self
            .users
            .iter()
            .filter(|u| u.visible_from.is_none_or(|t| t <= now))
            .skip(skip)
            .take(top)
            .map(|u| json!({"id": u.id, "userPrincipalName": u.upn}))
            .collect();
        let visible = self
            .users
            .iter()
            .filter(|u| u.visible_from.is_none_or(|t| t <= now))
            .count();
        (page, skip.saturating_add(top) < visible)
    }

    /// How many users are visible (`GET /users/$count`).
    pub(crate) fn visible_count(&self) -> usize {
        let now = Instant::now();
        self.users
            .iter()
            .filter(|u| u.visible_from.is_none_or(|t| t <= now))
            .count()
    }

    // ----- every method, and the registration report -----

    fn held<'a>(&'a self, idx: usize, updated: &'a str) -> Held<'a> {
        let u = &self.users[idx];
        Held {
            id: &u.id,
            upn: &u.upn,
            phones: [
                (PhoneType::Mobile, u.mobile.as_deref()),
                (PhoneType::AlternateMobile, u.alternate_mobile.as_deref()),
                (PhoneType::Office, u.office.as_deref()),
            ],
            sms_state: self.sms_state_shown(idx),
            email: u.email.as_deref(),
            default_method: u.default_method.as_deref(),
            methods: &u.methods,
            tap: self.tap_json(idx),
            system_preferred: self.system_preferred,
            updated,
        }
    }

    /// `GET /users/{id}/authentication/methods`.
    pub(crate) fn list_methods(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        Ok(methods::list_json(&self.held(i, "")))
    }

    /// One page of the registration report (`skip` rows skipped, at most `top`), in insertion
    /// order, and whether more follow. A user still replicating is not in it yet (the report
    /// lags behind the directory: "Report data can lag behind recent registration changes",
    /// realmjoin/realmjoin-runbooks org/security/sync-MFA-secure-users-to-group_scheduled.md).
    pub(crate) fn registration_page(
        &self,
        skip: usize,
        top: usize,
        beta: bool,
        updated: &str,
    ) -> (Vec<Value>, bool) {
        let now = Instant::now();
        let visible: Vec<usize> = (0..self.users.len())
            .filter(|i| self.users[*i].visible_from.is_none_or(|t| t <= now))
            .collect();
        let page = visible
            .iter()
            .skip(skip)
            .take(top)
            .map(|i| methods::registration_json(&self.held(*i, updated), beta))
            .collect();
        (page, skip.saturating_add(top) < visible.len())
    }

    // ----- phone methods -----

    pub(crate) fn list_phones(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let value: Vec<Value> = [
            PhoneType::Mobile,
            PhoneType::AlternateMobile,
            PhoneType::Office,
        ]
        .into_iter()
        .filter_map(|t| self.phone_json(i, t))
        .collect();
        Ok(json!({ "value": value }))
    }

    fn phone_type_of(method_id: &str) -> Result<PhoneType, GraphError> {
        PhoneType::from_method_id(method_id)
            .ok_or_else(|| GraphError::method_not_found("phone", method_id))
    }

    pub(crate) fn get_phone(&mut self, key: &str, method_id: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let t = Self::phone_type_of(method_id)?;
        self.phone_json(i, t)
            .ok_or_else(|| GraphError::method_not_found("phone", method_id))
    }

    pub(crate) fn create_phone(
        &mut self,
        key: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let body = object_body(body)?;
        let number = str_field(body, "phoneNumber")?
            .ok_or_else(|| GraphError::bad_request("Property 'phoneNumber' is required."))?;
        let type_name = str_field(body, "phoneType")?
            .ok_or_else(|| GraphError::bad_request("Property 'phoneType' is required."))?;
        let t = PhoneType::parse(type_name).ok_or_else(|| {
            GraphError::bad_request(format!(
                "Invalid phoneType '{type_name}'; expected mobile, alternateMobile or office."
            ))
        })?;
        if !is_valid_phone(number) {
            return Err(invalid_phone(number, self.echo_numbers));
        }
        if self.users[i].phone(t).is_some() {
            return Err(GraphError::bad_request(format!(
                "The phone method already exists: the user already has a phone method of type '{}'.",
                t.as_str()
            )));
        }
        if t == PhoneType::AlternateMobile && self.users[i].mobile.is_none() {
            return Err(GraphError::bad_request(
                "An alternateMobile phone method requires a mobile phone method: add the mobile first.",
            ));
        }
        *self.users[i].phone_mut(t) = Some(number.to_string());
        let mut conflict = false;
        if t == PhoneType::Mobile {
            self.users[i].sms_state = SMS_NOT_ENABLED;
            // "If a user is enabled by policy to use SMS to sign in and a mobile number is
            // added, the system will attempt to register the number for use in that system."
            // (https://learn.microsoft.com/en-us/graph/api/authentication-post-phonemethods)
            if self.in_sms_policy(i) {
                conflict = !self.try_enable_sms(i);
            }
        }
        self.record(i, t.as_str(), "create", Some(number.to_string()));
        if conflict && self.sms_conflict_answer == SmsConflictAnswer::Conflict {
            // The method is written, and the answer is 409 all the same (see the crate docs,
            // "SMS sign-in").
            return Err(number_not_unique(number, self.echo_numbers));
        }
        self.phone_json(i, t)
            .ok_or_else(|| GraphError::method_not_found("phone", t.method_id()))
    }

    pub(crate) fn update_phone(
        &mut self,
        key: &str,
        method_id: &str,
        body: Option<&Value>,
    ) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        let t = Self::phone_type_of(method_id)?;
        let body = object_body(body)?;
        if self.users[i].phone(t).is_none() {
            return Err(GraphError::method_not_found("phone", method_id));
        }
        if let Some(type_name) = str_field(body, "phoneType")? {
            if PhoneType::parse(type_name) != Some(t) {
                return Err(GraphError::bad_request(format!(
                    "The phoneType of a phone method cannot be changed (method is '{}').",
                    t.as_str()
                )));
            }
        }
        let number = str_field(body, "phoneNumber")?;
        if let Some(n) = number {
            if !is_valid_phone(n) {
                return Err(invalid_phone(n, self.echo_numbers));
            }
        }
        let current = self.users[i].phone(t).clone().unwrap_or_default();
        let new_number = number.unwrap_or(&current).to_string();
        let mut conflict = false;
        if t == PhoneType::Mobile && sms_key(&new_number) != sms_key(&current) {
            let state = self.users[i].sms_state;
            self.release_sms(i);
            self.users[i].mobile = Some(new_number.clone());
            self.users[i].sms_state = SMS_NOT_ENABLED;
            if state != SMS_NOT_ENABLED || self.in_sms_policy(i) {
                conflict = !self.try_enable_sms(i);
            }
        } else {
            *self.users[i].phone_mut(t) = Some(new_number.clone());
        }
        self.record(i, t.as_str(), "update", Some(new_number.clone()));
        if conflict && self.sms_conflict_answer == SmsConflictAnswer::Conflict {
            return Err(number_not_unique(&new_number, self.echo_numbers));
        }
        Ok(())
    }

    pub(crate) fn delete_phone(&mut self, key: &str, method_id: &str) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        let t = Self::phone_type_of(method_id)?;
        if self.users[i].phone(t).is_none() {
            return Err(GraphError::method_not_found("phone", method_id));
        }
        if let Some(default) = &self.users[i].default_method {
            if t.default_methods_using()
                .iter()
                .any(|d| d.eq_ignore_ascii_case(default))
            {
                return Err(default_method_refusal(i, t));
            }
        }
        if t == PhoneType::Mobile && self.users[i].alternate_mobile.is_some() {
            return Err(GraphError::bad_request(
                "Cannot delete the mobile phone method while an alternateMobile phone method exists: delete the alternateMobile first.",
            ));
        }
        if t == PhoneType::Mobile {
            self.release_sms(i);
            self.users[i].sms_state = SMS_NOT_ENABLED;
        }
        *self.users[i].phone_mut(t) = None;
        self.record(i, t.as_str(), "delete", None);
        Ok(())
    }

    pub(crate) fn set_sms_sign_in(
        &mut self,
        key: &str,
        method_id: &str,
        enable: bool,
    ) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        let t = Self::phone_type_of(method_id)?;
        if t != PhoneType::Mobile {
            return Err(GraphError::bad_request(format!(
                "SMS sign-in is only supported on the mobile phone method, not '{}'.",
                t.as_str()
            )));
        }
        if self.users[i].mobile.is_none() {
            return Err(GraphError::method_not_found("phone", method_id));
        }
        if enable {
            // "The user must be enabled for SMS sign-in in the authentication methods policy."
            // (https://learn.microsoft.com/en-us/graph/api/phoneauthenticationmethod-enablesmssignin)
            // The refusal: 405 with "Can not enable Sms sign in on phone auth method as the
            // credential policy is not enabled on user." (microsoft/MTC_FLWTeamsScale,
            // scripts/EnableSMS.ps1, which tests for exactly this status and text; the same words
            // in microsoftgraph/msgraph-sdk-dotnet#2549). No source shows its error code.
            if !self.in_sms_policy(i) && self.users[i].sms_state != SMS_READY {
                return Err(GraphError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "badRequest",
                    "Can not enable Sms sign in on phone auth method as the credential policy is not enabled on user.",
                ));
            }
            if !self.try_enable_sms(i) {
                let number = self.users[i].mobile.clone().unwrap_or_default();
                return Err(number_not_unique(&number, self.echo_numbers));
            }
            self.record(i, "smsSignIn", "enable", None);
        } else {
            self.release_sms(i);
            self.users[i].sms_state = SMS_NOT_ENABLED;
            self.record(i, "smsSignIn", "disable", None);
        }
        Ok(())
    }

    // ----- email methods -----

    pub(crate) fn list_emails(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let value: Vec<Value> = self.users[i].email_json().into_iter().collect();
        Ok(json!({ "value": value }))
    }

    fn check_email_id(method_id: &str) -> Result<(), GraphError> {
        if method_id.eq_ignore_ascii_case(EMAIL_METHOD_ID) {
            Ok(())
        } else {
            Err(GraphError::method_not_found("email", method_id))
        }
    }

    pub(crate) fn get_email(&mut self, key: &str, method_id: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        Self::check_email_id(method_id)?;
        self.users[i]
            .email_json()
            .ok_or_else(|| GraphError::method_not_found("email", method_id))
    }

    fn email_value(body: Option<&Value>) -> Result<String, GraphError> {
        let body = object_body(body)?;
        let email = str_field(body, "emailAddress")?
            .ok_or_else(|| GraphError::bad_request("Property 'emailAddress' is required."))?;
        if !is_valid_email(email) {
            return Err(GraphError::bad_request(
                "invalidEmailAddress: the email address is not in a valid format.",
            ));
        }
        Ok(email.to_string())
    }

    pub(crate) fn create_email(
        &mut self,
        key: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let email = Self::email_value(body)?;
        if self.users[i].email.is_some() {
            return Err(GraphError::bad_request(
                "The email method already exists: a user can have one email authentication method.",
            ));
        }
        self.users[i].email = Some(email.clone());
        self.record(i, "email", "create", Some(email));
        self.users[i]
            .email_json()
            .ok_or_else(|| GraphError::method_not_found("email", EMAIL_METHOD_ID))
    }

    pub(crate) fn update_email(
        &mut self,
        key: &str,
        method_id: &str,
        body: Option<&Value>,
    ) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        Self::check_email_id(method_id)?;
        if self.users[i].email.is_none() {
            return Err(GraphError::method_not_found("email", method_id));
        }
        let email = Self::email_value(body)?;
        self.users[i].email = Some(email.clone());
        self.record(i, "email", "update", Some(email));
        Ok(())
    }

    pub(crate) fn delete_email(&mut self, key: &str, method_id: &str) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        Self::check_email_id(method_id)?;
        if self.users[i].email.is_none() {
            return Err(GraphError::method_not_found("email", method_id));
        }
        self.users[i].email = None;
        self.record(i, "email", "delete", None);
        Ok(())
    }

    // ----- Temporary Access Pass -----

    /// Sets the policy; an include list is shown as the group [`tap::TAP_POLICY_GROUP_ID`],
    /// whose members `GET /groups/{id}/members` lists.
    pub(crate) fn set_tap_policy(&mut self, policy: TapPolicy) {
        match &policy.included {
            Some(users) => self.add_group(tap::TAP_POLICY_GROUP_ID, users),
            None => {
                self.groups.remove(tap::TAP_POLICY_GROUP_ID);
            }
        }
        self.tap_policy = policy;
    }

    pub(crate) fn tap_policy(&self) -> &TapPolicy {
        &self.tap_policy
    }

    /// `GET /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass`.
    pub(crate) fn tap_policy_json(&self) -> Value {
        tap::policy_json(&self.tap_policy)
    }

    pub(crate) fn issued_passes(&self) -> Vec<IssuedPass> {
        self.issued.clone()
    }

    pub(crate) fn tap_state(&self, key: &str) -> Option<TapState> {
        self.find(key)
            .and_then(|i| self.users[i].tap.as_ref().map(Tap::state))
    }

    /// Whether the policy lets the user have (and sign in with) a pass.
    fn tap_allowed(&self, idx: usize) -> bool {
        let u = &self.users[idx];
        self.tap_policy.enabled && tap::in_scope(&self.tap_policy, &u.id, &u.upn)
    }

    fn tap_json(&self, idx: usize) -> Option<Value> {
        self.users[idx]
            .tap
            .as_ref()
            .map(|t| t.json(None, chrono::Utc::now(), self.tap_allowed(idx)))
    }

    /// `GET .../temporaryAccessPassMethods`: the pass, at most one ("This API will only return a
    /// single object in the collection as a user can have only one Temporary Access Pass
    /// method", https://learn.microsoft.com/en-us/graph/api/authentication-list-temporaryaccesspassmethods),
    /// its value `null`.
    pub(crate) fn list_taps(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let value: Vec<Value> = self.tap_json(i).into_iter().collect();
        Ok(json!({ "value": value }))
    }

    /// `GET .../temporaryAccessPassMethods/{id}`
    /// (https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethod-get);
    /// another id is 404 like the other methods.
    pub(crate) fn get_tap(&mut self, key: &str, method_id: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        match &self.users[i].tap {
            Some(t) if t.id.eq_ignore_ascii_case(method_id) => self
                .tap_json(i)
                .ok_or_else(|| Self::tap_not_found(method_id)),
            _ => Err(Self::tap_not_found(method_id)),
        }
    }

    fn tap_not_found(method_id: &str) -> GraphError {
        GraphError::method_not_found("temporaryAccessPass", method_id)
    }

    /// `POST .../temporaryAccessPassMethods`: checks the request against the policy (see the
    /// refusals in `tap.rs`), then replaces any pass the user holds: "If the user requires a new
    /// Temporary Access Pass while the current Temporary Access Pass is valid, the admin can
    /// create a new Temporary Access Pass for the user, the previous Temporary Access Pass will
    /// be deleted, and a new Temporary Access Pass will be created"
    /// (https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods).
    /// Defaults: the policy's `defaultLifetimeInMinutes` and `isUsableOnce`, a start at once (same
    /// page). The answer is the only one that carries the value.
    pub(crate) fn create_tap(
        &mut self,
        key: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let req = tap::parse_request(object_body(body)?)?;
        if !self.tap_allowed(i) {
            return Err(tap::policy_refusal());
        }
        let p = &self.tap_policy;
        let usable_once = match req.usable_once {
            // "A multi-use Temporary Access Pass (isUsableOnce = false), can only be created ...
            // if it is allowed by the Temporary Access Pass authentication method policy" (same
            // page).
            Some(false) if p.is_usable_once => return Err(tap::reusable_refused()),
            Some(once) => once,
            None => p.is_usable_once,
        };
        let lifetime = match req.lifetime {
            Some(n) if n < i64::from(p.min_lifetime) || n > i64::from(p.max_lifetime) => {
                return Err(tap::lifetime_out_of_range(p.min_lifetime, p.max_lifetime));
            }
            Some(n) => u32::try_from(n).unwrap_or(p.default_lifetime),
            None => p.default_lifetime,
        };
        let now = chrono::Utc::now();
        let start = match req.start {
            Some(s) if s < now - chrono::Duration::seconds(tap::START_SKEW_SECS) => {
                return Err(tap::start_in_past());
            }
            Some(s) => s,
            None => now,
        };
        let value = tap::new_value(p.default_length);
        let pass = Tap {
            id: uuid::Uuid::new_v4().to_string(),
            created: now,
            start,
            lifetime,
            usable_once,
        };
        let u = &mut self.users[i];
        match u
            .methods
            .iter_mut()
            .find(|(k, _)| *k == MethodKind::TemporaryAccessPass)
        {
            Some(entry) => entry.1 = pass.id.clone(),
            None => u
                .methods
                .push((MethodKind::TemporaryAccessPass, pass.id.clone())),
        }
        let answer = pass.json(Some(&value), now, true);
        self.issued.push(IssuedPass {
            upn: u.upn.clone(),
            user_id: u.id.clone(),
            method_id: pass.id.clone(),
            value,
            created: std::time::SystemTime::from(now),
        });
        u.tap = Some(pass);
        self.record(i, "temporaryAccessPass", "create", None);
        Ok(answer)
    }

    /// `DELETE .../temporaryAccessPassMethods/{id}`
    /// (https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethod-delete):
    /// 204, or 404 for another id.
    pub(crate) fn delete_tap(&mut self, key: &str, method_id: &str) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        let u = &mut self.users[i];
        if !u
            .tap
            .as_ref()
            .is_some_and(|t| t.id.eq_ignore_ascii_case(method_id))
        {
            return Err(Self::tap_not_found(method_id));
        }
        u.tap = None;
        u.methods
            .retain(|(k, _)| *k != MethodKind::TemporaryAccessPass);
        self.record(i, "temporaryAccessPass", "delete", None);
        Ok(())
    }

    // ----- sign-in preferences (beta) -----

    pub(crate) fn get_preferences(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let system = methods::system_preferred_one(&self.held(i, ""));
        Ok(json!({
            "isSystemPreferredAuthenticationMethodEnabled": self.system_preferred,
            "userPreferredMethodForSecondaryAuthentication": self.users[i].default_method,
            "systemPreferredAuthenticationMethod": system,
        }))
    }

    pub(crate) fn update_preferences(
        &mut self,
        key: &str,
        body: Option<&Value>,
    ) -> Result<(), GraphError> {
        let i = self.resolve(key)?;
        let body = object_body(body)?;
        let Some(method) = str_field(body, "userPreferredMethodForSecondaryAuthentication")? else {
            return Err(GraphError::bad_request(
                "Property 'userPreferredMethodForSecondaryAuthentication' is required.",
            ));
        };
        let Some(canonical) = DEFAULT_METHODS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(method))
        else {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{method}' for userPreferredMethodForSecondaryAuthentication."
            )));
        };
        let needed = [
            PhoneType::Mobile,
            PhoneType::AlternateMobile,
            PhoneType::Office,
        ]
        .into_iter()
        .find(|t| t.default_methods_using().contains(canonical));
        if let Some(t) = needed {
            if self.users[i].phone(t).is_none() {
                return Err(GraphError::bad_request(format!(
                    "The default method '{canonical}' requires a registered {} phone method.",
                    t.as_str()
                )));
            }
        }
        self.users[i].default_method = Some(canonical.to_string());
        self.record(
            i,
            "signInPreferences",
            "update",
            Some(canonical.to_string()),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ALTERNATE_MOBILE_METHOD_ID, MOBILE_METHOD_ID, OFFICE_METHOD_ID};

    fn phone(number: &str, t: &str) -> Value {
        json!({"phoneNumber": number, "phoneType": t})
    }

    #[test]
    fn phone_format() {
        for ok in [
            "+1 2065550100",
            "+44 7700900123",
            "+1 2065550100x123",
            "+353 871234567",
        ] {
            assert!(is_valid_phone(ok), "{ok}");
        }
        for bad in [
            "2065550100",
            "+12065550100",
            "+1 206-555-0100",
            "+1 206 555 0100",
            "+1 2065550100x",
            "+0 2065550100",
            "+1234 2065550100",
            "+1 123",
            "+1 2065550100x12345678901",
            "+44 7700900123456789",
            "",
        ] {
            assert!(!is_valid_phone(bad), "{bad}");
        }
    }

    #[test]
    fn alternate_requires_mobile_and_mobile_delete_requires_no_alternate() {
        let mut d = Directory::new(false, false);
        d.add_user(SeedUser::new("a@x.com"));
        let e = d
            .create_phone("a@x.com", Some(&phone("+1 2065550101", "alternateMobile")))
            .expect_err("alternate without mobile");
        assert!(e.message.contains("requires a mobile"));
        d.create_phone("A@X.COM", Some(&phone("+1 2065550100", "mobile")))
            .expect("mobile");
        d.create_phone("a@x.com", Some(&phone("+1 2065550101", "alternateMobile")))
            .expect("alternate");
        let e = d
            .delete_phone("a@x.com", MOBILE_METHOD_ID)
            .expect_err("mobile with alternate");
        assert!(e.message.contains("alternateMobile"));
        d.delete_phone("a@x.com", ALTERNATE_MOBILE_METHOD_ID)
            .expect("delete alternate");
        d.delete_phone("a@x.com", MOBILE_METHOD_ID)
            .expect("delete mobile");
        assert_eq!(d.user("a@x.com").map(|u| u.mobile), Some(None));
        assert_eq!(d.write_log().len(), 4);
    }

    #[test]
    fn default_method_blocks_deleting_its_phone() {
        let mut d = Directory::new(false, false);
        d.add_user(SeedUser {
            office: Some("+1 2065550199".into()),
            default_method: Some("voiceOffice".into()),
            ..SeedUser::new("a@x.com")
        });
        let e = d
            .delete_phone("a@x.com", OFFICE_METHOD_ID)
            .expect_err("default");
        assert_eq!(e.code, "badRequest");
        assert!(e.message.contains(OFFICE_METHOD_ID), "{}", e.message);
        assert!(d.write_log().is_empty());
    }

    #[test]
    fn sms_policy_and_uniqueness() {
        let mut d = Directory::new(true, false);
        d.add_user(SeedUser::new("a@x.com"));
        d.add_user(SeedUser::new("b@x.com"));
        let a = d
            .create_phone("a@x.com", Some(&phone("+1 2065550100", "mobile")))
            .expect("a");
        assert_eq!(a["smsSignInState"], "ready");
        // The stricter shape: 409, and the method is written all the same.
        let e = d
            .create_phone("b@x.com", Some(&phone("+1 2065550100x9", "mobile")))
            .expect_err("b's number is a's SMS sign-in number");
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "phoneNumberNotUnique")
        );
        assert!(!e.message.contains("2065550100"), "{}", e.message);
        let b = d.user("b@x.com").expect("b");
        assert_eq!(b.mobile.as_deref(), Some("+1 2065550100x9"));
        assert_eq!(b.sms_sign_in.as_deref(), Some("phoneNumberNotUnique"));
        // The other shape: 201 with the state.
        d.sms_conflict_answer = SmsConflictAnswer::Accepted;
        d.add_user(SeedUser::new("c@x.com"));
        let c = d
            .create_phone("c@x.com", Some(&phone("+1 2065550100", "mobile")))
            .expect("201 shape");
        assert_eq!(c["smsSignInState"], "phoneNumberNotUnique");
        d.set_sms_sign_in("a@x.com", MOBILE_METHOD_ID, false)
            .expect("disable");
        d.set_sms_sign_in("b@x.com", MOBILE_METHOD_ID, true)
            .expect("enable now free");
        let e = d
            .set_sms_sign_in("a@x.com", MOBILE_METHOD_ID, true)
            .expect_err("taken by b");
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "phoneNumberNotUnique")
        );
    }

    #[test]
    fn users_outside_the_sms_policy_cannot_enable_it() {
        let mut d = Directory::new(true, false);
        d.set_sms_policy_users(&["in@x.com".to_string()]);
        for u in ["in@x.com", "out@x.com"] {
            d.add_user(SeedUser::new(u));
        }
        let inside = d
            .create_phone("in@x.com", Some(&phone("+1 2065550100", "mobile")))
            .expect("in");
        assert_eq!(inside["smsSignInState"], "ready");
        let outside = d
            .create_phone("out@x.com", Some(&phone("+1 2065550101", "mobile")))
            .expect("out");
        assert_eq!(outside["smsSignInState"], "notAllowedByPolicy");
        let e = d
            .set_sms_sign_in("out@x.com", MOBILE_METHOD_ID, true)
            .expect_err("not in the policy");
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            e.message.contains("credential policy is not enabled"),
            "{}",
            e.message
        );
        // Policy off: nobody.
        d.sms_sign_in_policy = false;
        d.set_sms_sign_in("in@x.com", MOBILE_METHOD_ID, false)
            .expect("disable");
        assert!(d
            .set_sms_sign_in("in@x.com", MOBILE_METHOD_ID, true)
            .is_err());
        assert_eq!(
            d.user("in@x.com").and_then(|u| u.sms_sign_in).as_deref(),
            Some("notAllowedByPolicy")
        );
    }

    #[test]
    fn a_replicating_user_answers_404_until_it_is_visible() {
        let mut d = Directory::new(false, false);
        d.add_user(SeedUser::new("new@x.com"));
        assert!(d.hide_until(
            "new@x.com",
            Instant::now() + std::time::Duration::from_secs(60)
        ));
        let e = d.list_phones("new@x.com").expect_err("replicating");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(d.list_users(0, 10).0.len(), 0);
        assert!(d.hide_until("new@x.com", Instant::now()));
        assert!(d.list_phones("new@x.com").is_ok());
        assert!(!d.hide_until("nobody@x.com", Instant::now()));
    }

    #[test]
    fn both_default_method_texts_are_used() {
        let mut d = Directory::new(false, false);
        for u in ["a@x.com", "b@x.com"] {
            d.add_user(SeedUser {
                mobile: Some("+1 2065550100".into()),
                default_method: Some("sms".into()),
                ..SeedUser::new(u)
            });
        }
        let a = d.delete_phone("a@x.com", MOBILE_METHOD_ID).expect_err("a");
        let b = d.delete_phone("b@x.com", MOBILE_METHOD_ID).expect_err("b");
        assert!(
            a.message.contains(&format!(
                "[{MOBILE_METHOD_ID}] matches the user's current default authentication method"
            )),
            "{}",
            a.message
        );
        assert!(b
            .message
            .starts_with("Cannot delete default method with other methods configured."));
    }

    #[test]
    fn auto_create_only_for_upns() {
        let mut d = Directory::new(false, true);
        assert!(d.resolve("new@x.com").is_ok());
        assert_eq!(d.len(), 1);
        assert_eq!(
            d.resolve("00000000-0000-0000-0000-000000000000")
                .expect_err("guid")
                .status,
            StatusCode::NOT_FOUND
        );
    }
}
