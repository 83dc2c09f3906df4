//! Ready-made tenants for tests, benchmarks and `--simulate`: users holding every mix of
//! methods, in a fixed rotation, so that a tenant of any size has known shares of each mix.

use crate::model::{MethodKind, SeedUser};

/// Users per turn of [`mixed_tenant`]'s rotation.
pub const MIXED_ROTATION: usize = 20;

/// `n` users `user{i}@{domain}` (i from 0), the i-th holding the mix `i % 20` of:
///
/// | mix | methods | default |
/// |---|---|---|
/// | 0 | security key, mobile with SMS sign-in | sms |
/// | 1 | passkey in Authenticator | |
/// | 2 | Windows Hello, email | |
/// | 3 | certificate | |
/// | 4 | Authenticator, mobile | push |
/// | 5 | Authenticator | push |
/// | 6 | software OATH, office phone | oath |
/// | 7 | Authenticator, an expired Temporary Access Pass | push |
/// | 8 | mobile with SMS sign-in | sms |
/// | 9 | mobile | sms |
/// | 10 | mobile, email | sms |
/// | 11 | office phone | voiceOffice |
/// | 12 | mobile, alternate mobile | sms |
/// | 13 | mobile with SMS sign-in, email | sms |
/// | 14, 15 | email | |
/// | 16 | nothing | |
/// | 17 | an expired Temporary Access Pass | |
/// | 18 | mobile | voiceMobile |
/// | 19 | security key, Authenticator | push |
///
/// Every phone number is the user's own (SMS sign-in is `ready` where on, given a simulator
/// whose SMS sign-in policy allows it).
pub fn mixed_tenant(n: usize, domain: &str) -> Vec<SeedUser> {
    use MethodKind::{
        Authenticator as App, Certificate as Cert, Fido2SecurityKey as Key,
        PasskeyAuthenticator as Passkey, SoftwareOath as Oath, TemporaryAccessPass as Tap,
        WindowsHello as Hello,
    };
    // Phones and email of each mix: M mobile, S SMS sign-in on it, A alternate mobile, O office,
    // E email.
    const MIXES: [(&[MethodKind], &str, Option<&str>); MIXED_ROTATION] = [
        (&[Key], "MS", Some("sms")),
        (&[Passkey], "", None),
        (&[Hello], "E", None),
        (&[Cert], "", None),
        (&[App], "M", Some("push")),
        (&[App], "", Some("push")),
        (&[Oath], "O", Some("oath")),
        (&[App, Tap], "", Some("push")),
        (&[], "MS", Some("sms")),
        (&[], "M", Some("sms")),
        (&[], "ME", Some("sms")),
        (&[], "O", Some("voiceOffice")),
        (&[], "MA", Some("sms")),
        (&[], "MSE", Some("sms")),
        (&[], "E", None),
        (&[], "E", None),
        (&[], "", None),
        (&[Tap], "", None),
        (&[], "M", Some("voiceMobile")),
        (&[Key, App], "", Some("push")),
    ];
    (0..n)
        .map(|i| {
            let (methods, phones, default) = MIXES[i % MIXED_ROTATION];
            let has = |c: char| phones.contains(c);
            let number = |prefix: u32| format!("+1 {prefix}{:08}", i % 100_000_000);
            SeedUser {
                methods: methods.to_vec(),
                mobile: has('M').then(|| number(20)),
                sms_sign_in_enabled: has('S'),
                alternate_mobile: has('A').then(|| number(40)),
                office: has('O').then(|| number(30)),
                email: has('E').then(|| format!("user{i}.private@example.org")),
                default_method: default.map(str::to_string),
                ..SeedUser::new(format!("user{i}@{domain}"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_repeats_and_numbers_are_unique() {
        let t = mixed_tenant(45, "contoso.com");
        assert_eq!(t.len(), 45);
        assert_eq!(t[0].methods, t[20].methods);
        assert_eq!(t[3].methods, vec![MethodKind::Certificate]);
        let mobiles: std::collections::HashSet<_> =
            t.iter().filter_map(|u| u.mobile.clone()).collect();
        assert_eq!(
            mobiles.len(),
            t.iter().filter(|u| u.mobile.is_some()).count()
        );
        assert!(t
            .iter()
            .all(|u| u.alternate_mobile.is_none() || u.mobile.is_some()));
    }
}
