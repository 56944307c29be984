//! Accounts and tokens: the AuthActor, scrypt password hashing and JWT keys.

mod actor;
mod jwt;
mod password;
mod validate;

pub use actor::{AuthActor, AuthArgs, AuthMsg, IssuedToken, UserProfile};
pub use jwt::{JwtKeys, TOKEN_SECRET_MIN_BYTES};
pub use password::{PasswordHasher, ScryptSettings};
