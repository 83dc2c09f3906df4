//! Microsoft Graph: app credentials and tokens, the HTTP client with retries and adaptive
//! throttling, and the authentication-method endpoints the product uses.

pub mod aadsts;
pub mod all_methods;
pub mod client;
pub mod credentials;
pub mod email_methods;
pub mod error;
pub mod limiter;
pub mod permissions;
pub mod phone_methods;
pub mod registration;
pub mod retry;
pub mod sign_in_preferences;
pub mod tap_methods;
pub mod token;
pub mod users;

pub use all_methods::AuthenticationMethod;
pub use client::{ClientOptions, ClientStats, GraphClient};
pub use credentials::{CertificateExpiry, Credentials, CredentialsError, EXPIRY_WARNING_DAYS};
pub use email_methods::{EmailMethod, EMAIL_METHOD_ID};
pub use error::{ConfigFault, GraphError, TokenError};
pub use limiter::{AdaptiveLimiter, LimiterConfig};
pub use permissions::Feature;
pub use phone_methods::{
    PhoneMethod, PhoneType, SmsSignInState, ALTERNATE_MOBILE_METHOD_ID, MOBILE_METHOD_ID,
    OFFICE_METHOD_ID,
};
pub use registration::{RegistrationDetails, RegistrationPage, REPORT_PAGE_SIZE};
pub use sign_in_preferences::SignInPreferences;
pub use tap_methods::TapMethod;
pub use token::{AccessToken, TokenProvider};
pub use users::{DirectoryUser, UsersPage};
