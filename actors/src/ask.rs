//! Request/reply to an actor, with its failure modes folded into [`CoreError`].

use ractor::{rpc::CallResult, ActorRef, RpcReplyPort};

use crate::error::{CoreError, CoreResult};

/// Sends the message `build` makes and waits for the actor's reply. An actor that is gone
/// before the message lands, or that dropped the reply (it failed mid-request), is `ActorGone`:
/// the caller may find a fresh one and retry.
pub(crate) async fn ask<M, T>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<CoreResult<T>>) -> M,
) -> CoreResult<T>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(build, None).await {
        Ok(CallResult::Success(reply)) => reply,
        Ok(CallResult::Timeout) => Err(CoreError::Internal("actor call timed out".into())),
        // The actor dropped the reply: it failed mid-request, and its supervisor restarts it.
        Ok(CallResult::SenderError) => Err(CoreError::ActorGone),
        Err(_) => Err(CoreError::ActorGone),
    }
}
