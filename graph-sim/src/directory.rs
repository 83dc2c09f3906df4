//! The simulated directory: users, their phone/email methods, default method, SMS sign-in, and
//! the rules Graph enforces on them. Pure and synchronous; the server holds it behind a mutex.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::model::{PhoneType, SeedUser, UserState, WriteRecord, EMAIL_METHOD_ID};
use crate::response::GraphError;

const SMS_READY: &str = "ready";
const SMS_NOT_ENABLED: &str = "notEnabled";
const SMS_NOT_UNIQUE: &str = "phoneNumberNotUnique";
const SMS_NOT_SUPPORTED: &str = "notSupported";

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

    fn phone_json(&self, t: PhoneType) -> Option<Value> {
        self.phone(t).as_ref().map(|number| {
            let sms = if t == PhoneType::Mobile {
                self.sms_state
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

    fn snapshot(&self) -> UserState {
        UserState {
            id: self.id.clone(),
            upn: self.upn.clone(),
            mobile: self.mobile.clone(),
            alternate_mobile: self.alternate_mobile.clone(),
            office: self.office.clone(),
            email: self.email.clone(),
            sms_sign_in: self.mobile.as_ref().map(|_| self.sms_state.to_string()),
            default_method: self.default_method.clone(),
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

fn invalid_phone() -> GraphError {
    GraphError::bad_request(
        "invalidPhoneNumber: the phone number is not in a valid format; expected '+{countryCode} {number}x{extension}'.",
    )
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
    pub(crate) auto_create_users: bool,
}

impl Directory {
    pub(crate) fn new(sms_sign_in_policy: bool, auto_create_users: bool) -> Self {
        Directory {
            sms_sign_in_policy,
            auto_create_users,
            ..Directory::default()
        }
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
        let user = User {
            id,
            upn: seed.upn.clone(),
            mobile: seed.mobile.clone(),
            alternate_mobile: seed.alternate_mobile.clone(),
            office: seed.office.clone(),
            email: seed.email.clone(),
            sms_state: SMS_NOT_ENABLED,
            default_method: seed.default_method.clone(),
        };
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
    pub(crate) fn resolve(&mut self, key: &str) -> Result<usize, GraphError> {
        if let Some(i) = self.find(key) {
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
            }));
        }
        Err(GraphError::user_not_found(key))
    }

    pub(crate) fn user(&self, key: &str) -> Option<UserState> {
        self.find(key).map(|i| self.users[i].snapshot())
    }

    pub(crate) fn users(&self) -> Vec<UserState> {
        self.users.iter().map(User::snapshot).collect()
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
        let page = self
            .users
            .iter()
            .skip(skip)
            .take(top)
            .map(|u| json!({"id": u.id, "userPrincipalName": u.upn}))
            .collect();
        (page, skip.saturating_add(top) < self.users.len())
    }

    // ----- phone methods -----

    pub(crate) fn list_phones(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        let u = &self.users[i];
        let value: Vec<Value> = [
            PhoneType::Mobile,
            PhoneType::AlternateMobile,
            PhoneType::Office,
        ]
        .into_iter()
        .filter_map(|t| u.phone_json(t))
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
        self.users[i]
            .phone_json(t)
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
            return Err(invalid_phone());
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
        if t == PhoneType::Mobile {
            self.users[i].sms_state = SMS_NOT_ENABLED;
            if self.sms_sign_in_policy {
                self.try_enable_sms(i);
            }
        }
        self.record(i, t.as_str(), "create", Some(number.to_string()));
        self.users[i]
            .phone_json(t)
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
                return Err(invalid_phone());
            }
        }
        let current = self.users[i].phone(t).clone().unwrap_or_default();
        let new_number = number.unwrap_or(&current).to_string();
        if t == PhoneType::Mobile && sms_key(&new_number) != sms_key(&current) {
            let state = self.users[i].sms_state;
            self.release_sms(i);
            self.users[i].mobile = Some(new_number.clone());
            if state != SMS_NOT_ENABLED || self.sms_sign_in_policy {
                self.try_enable_sms(i);
            }
        } else {
            *self.users[i].phone_mut(t) = Some(new_number.clone());
        }
        self.record(i, t.as_str(), "update", Some(new_number));
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
                return Err(GraphError::bad_request(format!(
                    "Cannot delete the {} phone method: it is used by the user's default sign-in method '{default}'. Change the default method first.",
                    t.as_str()
                )));
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
            if !self.try_enable_sms(i) {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "phoneNumberNotUnique",
                    "The phone number is already used for SMS sign-in by another user in the tenant.",
                ));
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

    // ----- sign-in preferences (beta) -----

    pub(crate) fn get_preferences(&mut self, key: &str) -> Result<Value, GraphError> {
        let i = self.resolve(key)?;
        Ok(json!({
            "isSystemPreferredAuthenticationMethodEnabled": false,
            "userPreferredMethodForSecondaryAuthentication": self.users[i].default_method,
            "systemPreferredAuthenticationMethod": null,
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
        assert!(e.message.contains("voiceOffice"));
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
        let b = d
            .create_phone("b@x.com", Some(&phone("+1 2065550100x9", "mobile")))
            .expect("b");
        assert_eq!(b["smsSignInState"], "phoneNumberNotUnique");
        d.set_sms_sign_in("a@x.com", MOBILE_METHOD_ID, false)
            .expect("disable");
        d.set_sms_sign_in("b@x.com", MOBILE_METHOD_ID, true)
            .expect("enable now free");
        let e = d
            .set_sms_sign_in("a@x.com", MOBILE_METHOD_ID, true)
            .expect_err("taken by b");
        assert_eq!(e.code, "phoneNumberNotUnique");
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
