//! Accounts and tokens: the AuthActor, scrypt password hashing, JWT keys, token revocation and
//! login throttling.

mod actor;
mod in_flight;
mod jwt;
mod lifecycle;
mod password;
mod revocation;
mod revoked;
mod throttle;
mod validate;

pub use actor::{AuthActor, AuthArgs, AuthMsg, IssuedToken, LoginClient, UserProfile};
pub use jwt::{JwtKeys, TokenSubject, TOKEN_SECRET_MIN_BYTES};
pub use password::{PasswordHasher, ScryptSettings};
pub use revocation::{Generations, DELETED};
pub use revoked::RevokedTokens;
pub use throttle::{LoginThrottle, ThrottleSettings};
