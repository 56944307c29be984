//! JWT issue and verification: HS256 only; `sub`/`iat`/`exp`/`iss`/`aud` required, our issuer and
//! audience only, `nbf` honoured when present. A pure function over shared keys, so checking a
//! token on each request costs no actor round-trip.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::CoreError;

/// A configured secret shorter than this is refused at start: HS256 wants ≥ 256 bits.
pub const TOKEN_SECRET_MIN_BYTES: usize = 32;
/// Who signs our tokens (`iss`); a token another service signed with a shared secret says else.
pub const TOKEN_ISSUER: &str = "omnichat";
/// Whom our tokens are for (`aud`), so a token minted for another audience is not accepted here.
pub const TOKEN_AUDIENCE: &str = "omnichat-api";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
    /// The user's token generation at issue; tokens from before this claim existed count as 0.
    #[serde(default)]
    gen: i64,
    /// The token's own id, so `POST /logout` can refuse this token alone. Tokens from before
    /// this claim existed have none (their logout refuses all the user's tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// Who a verified token speaks for, the token generation it was issued at, its id and expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSubject {
    pub user_id: Uuid,
    pub generation: i64,
    /// The `jti` claim; `None` for a token issued before tokens had one.
    pub token_id: Option<Uuid>,
    /// The `exp` claim, Unix seconds.
    pub expires_at: i64,
}

/// Tokens verified recently, kept at most this many: a client sends the same token with every
/// request, and checking its signature and claims again costs more than the rest of the request's
/// authentication. Past it the table is swept of expired tokens, or emptied.
const VERIFIED_KEPT: usize = 16_384;
/// `exp` is honoured with this many seconds of leeway, as `jsonwebtoken` does.
const LEEWAY_SECS: u64 = 5;

/// The signing and verifying keys and the rules tokens must meet.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens that passed [`JwtKeys::verify`], by their whole text, with what they said. Only
    /// the signature and the fixed claims are remembered; the token's generation and revocation
    /// are checked on every request by the caller, and expiry is checked again here.
    verified: Mutex<HashMap<Box<str>, TokenSubject>>,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_audience(&[TOKEN_AUDIENCE]);
        // Checked only when a token carries one; ours do not, they are valid from `iat`.
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// How long a token lives, for the `expires_in` of the token response.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `user_id` at token generation `generation`.
    pub fn issue(&self, user_id: Uuid, generation: i64) -> Result<String, CoreError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
            iss: TOKEN_ISSUER.to_owned(),
            aud: TOKEN_AUDIENCE.to_owned(),
            gen: generation,
            jti: Some(Uuid::new_v4().to_string()),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| CoreError::Internal(format!("signing token: {err}")))
    }

    /// The user a token speaks for, or `Unauthenticated` for anything not signed by us, not
    /// HS256, expired, issued in the future, not yet valid (`nbf`), for another issuer or
    /// audience, or with claims missing or of the wrong type.
    pub fn verify(&self, token: &str) -> Result<TokenSubject, CoreError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(subject) = self.remembered(token, now) {
            return Ok(subject);
        }
        let subject = self.check(token)?;
        self.remember(token, subject, now);
        Ok(subject)
    }

    /// A token verified before and not expired since.
    fn remembered(&self, token: &str, now: i64) -> Option<TokenSubject> {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        verified
            .get(token)
            .filter(|subject| !expired(subject, now))
            .copied()
    }

    fn remember(&self, token: &str, subject: TokenSubject, now: i64) {
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= VERIFIED_KEPT {
            verified.retain(|_, subject| !expired(subject, now));
            if verified.len() >= VERIFIED_KEPT {
                verified.clear();
            }
        }
        verified.insert(token.into(), subject);
    }

    /// The full check: signature, algorithm and claims.
    fn check(&self, token: &str) -> Result<TokenSubject, CoreError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| CoreError::Unauthenticated("Could not validate credentials"))?;
        let now = chrono::Utc::now().timestamp();
        if data.claims.iat > now + 60 {
            return Err(CoreError::Unauthenticated("Could not validate credentials"));
        }
        let user_id = Uuid::parse_str(&data.claims.sub)
            .map_err(|_| CoreError::Unauthenticated("Could not validate credentials"))?;
        // A `jti` that is not one of ours cannot be on the denylist; refuse rather than guess.
        let token_id = match data.claims.jti.as_deref() {
            None => None,
            Some(jti) => Some(
                Uuid::parse_str(jti)
                    .map_err(|_| CoreError::Unauthenticated("Could not validate credentials"))?,
            ),
        };
        Ok(TokenSubject {
            user_id,
            generation: data.claims.gen,
            token_id,
            expires_at: data.claims.exp,
        })
    }
}

/// Past `exp` by more than the leeway, as `jsonwebtoken` judges it.
fn expired(subject: &TokenSubject, now: i64) -> bool {
    subject.expires_at < now - LEEWAY_SECS as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_round_trips_to_its_user() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60));
        let user = Uuid::now_v7();
        let token = keys.issue(user, 3).unwrap();
        let subject = keys.verify(&token).unwrap();
        assert_eq!((subject.user_id, subject.generation), (user, 3));
        let again = keys.verify(&keys.issue(user, 3).unwrap()).unwrap();
        assert!(subject.token_id.is_some());
        assert_ne!(
            subject.token_id, again.token_id,
            "each token has its own id"
        );
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60));
        let token = keys.issue(Uuid::now_v7(), 0).unwrap();
        let subject = keys.verify(&token).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert_eq!(keys.remembered(&token, now), Some(subject));
        let later = subject.expires_at + LEEWAY_SECS as i64 + 1;
        assert_eq!(keys.remembered(&token, later), None);
    }

    #[test]
    fn another_key_or_a_changed_byte_is_refused() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60));
        let other = JwtKeys::new(
            b"another secret of at least 32 bytes!!",
            Duration::from_secs(60),
        );
        let token = other.issue(Uuid::now_v7(), 0).unwrap();
        assert!(keys.verify(&token).is_err());
        // Verified once already: a changed byte is another token, checked in full.
        let genuine = keys.issue(Uuid::now_v7(), 0).unwrap();
        assert!(keys.verify(&genuine).is_ok());
        let mut tampered = genuine.into_bytes();
        let mid = tampered.len() / 2;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        assert!(keys.verify(&String::from_utf8(tampered).unwrap()).is_err());
    }
}
