//! The end of a token's or an account's life: revoking one token, revoking every token,
//! changing the password and deleting the account. One token goes on the denylist of revoked
//! token ids; the others revoke by bumping the user's token generation.

use omnichat_entity::users;
use uuid::Uuid;

use super::{actor::AuthState, validate, TokenSubject, DELETED};
use crate::error::{CoreError, CoreResult};

impl AuthState {
    /// Refuses this one token until it expires: recorded in the database (for restarts and
    /// nodes whose listener reconnects), in memory here, and sent to the other nodes. A token
    /// from before tokens had ids cannot be named alone, so its logout revokes them all.
    pub(super) async fn revoke_token(&self, subject: TokenSubject) -> CoreResult<()> {
        let Some(token_id) = subject.token_id else {
            return self.revoke_tokens(subject.user_id).await;
        };
        let user_id = subject.user_id;
        self.store
            .insert_revoked_token(token_id, user_id, subject.expires_at)
            .await?;
        self.revoked.insert(token_id, subject.expires_at);
        if self.store.is_shared() {
            if let Err(err) = self
                .store
                .signal_token_revoked(token_id, subject.expires_at)
                .await
            {
                tracing::warn!(%user_id, %err, "sending a token logout to other nodes");
            }
        }
        tracing::info!(%user_id, %token_id, "token revoked");
        Ok(())
    }

    /// Bumps the user's token generation, raises it here at once and tells the other nodes.
    pub(super) async fn revoke_tokens(&self, user_id: Uuid) -> CoreResult<()> {
        let generation = match self.store.bump_token_generation(user_id).await {
            Err(CoreError::NotFound(_)) => {
                return Err(CoreError::Unauthenticated("User no longer exists"))
            }
            other => other?,
        };
        self.publish(user_id, generation).await;
        tracing::info!(%user_id, generation, "tokens revoked");
        Ok(())
    }

    /// Records a new generation here and, on PostgreSQL, sends it to the other nodes. A lost
    /// notice is logged, not failed: the write is done, and a node whose listener reconnects
    /// forgets what it knew and reads the database again.
    async fn publish(&self, user_id: Uuid, generation: i64) {
        self.generations.raise(user_id, generation);
        if self.store.is_shared() {
            if let Err(err) = self.store.signal_generation(user_id, generation).await {
                tracing::warn!(%user_id, %err, "sending a token revocation to other nodes");
            }
        }
    }

    /// The user, if `password` is theirs; a wrong one is `WrongPassword` (403: the token is
    /// fine, the password is not, and a 401 would tell clients to drop the token).
    pub(super) async fn check_password(
        &self,
        user_id: Uuid,
        password: String,
    ) -> CoreResult<users::Model> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(CoreError::Unauthenticated("User no longer exists"))?;
        if validate::too_long_to_check(&password) {
            return Err(CoreError::WrongPassword);
        }
        if self
            .hasher
            .verify(password, Some(user.password_hash.clone()))
            .await?
        {
            Ok(user)
        } else {
            tracing::info!(%user_id, "wrong current password");
            Err(CoreError::WrongPassword)
        }
    }

    pub(super) async fn on_change_password(
        &self,
        user_id: Uuid,
        current: String,
        new: String,
    ) -> CoreResult<()> {
        let user = self.check_password(user_id, current).await?;
        validate::new_password(&new, &user.username, &user.email)?;
        let hash = self.hasher.hash(new).await?;
        self.store.set_password_hash(user_id, hash).await?;
        tracing::info!(%user_id, "password changed");
        self.revoke_tokens(user_id).await
    }

    /// Deletes the row (sessions and messages go with it) and marks the user deleted in
    /// memory, here and on the other nodes, so no token of theirs needs a read to be refused.
    pub(super) async fn on_delete_account(&self, user_id: Uuid) -> CoreResult<()> {
        match self.store.delete_user(user_id).await {
            Err(CoreError::NotFound(_)) => {
                return Err(CoreError::Unauthenticated("User no longer exists"))
            }
            other => other?,
        }
        self.publish(user_id, DELETED).await;
        tracing::info!(%user_id, "account deleted");
        Ok(())
    }
}
