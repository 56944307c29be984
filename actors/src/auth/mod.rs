//! Accounts and tokens: the AuthActor, scrypt password hashing, JWT keys and token revocation.

mod actor;
mod jwt;
mod lifecycle;
mod password;
mod revocation;
mod validate;

pub use actor::{AuthActor, AuthArgs, AuthMsg, IssuedToken, UserProfile};
pub use jwt::{JwtKeys, TokenSubject, TOKEN_SECRET_MIN_BYTES};
pub use password::{PasswordHasher, ScryptSettings};
pub use revocation::{Generations, DELETED};
