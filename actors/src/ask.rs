//! Request/reply to an actor, with its failure modes folded into [`CoreError`].

use ractor::{rpc::CallResult, ActorRef, RpcReplyPort};

use crate::error::{CoreError, CoreResult};

/// Sends the message `build` makes and waits for the actor's reply. An actor that is gone
/// before the message lands is `ActorGone` (the caller may find a fresh one and retry); one that
/// dropped the reply (it crashed mid-request) is `Internal`.
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
        Ok(CallResult::SenderError) => Err(CoreError::actor_gone("the request's handler")),
        Err(_) => Err(CoreError::ActorGone),
    }
}
