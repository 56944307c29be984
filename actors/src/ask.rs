//! Request/reply to an actor, with its failure modes folded into [`CoreError`].

use std::time::Duration;

use ractor::{rpc::CallResult, ActorRef, RpcReplyPort};

use crate::error::{CoreError, CoreResult};

/// No request waits on an actor longer than this: a stuck actor yields 503, not a hung client.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

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
    match actor.call(build, Some(CALL_TIMEOUT)).await {
        Ok(CallResult::Success(reply)) => reply,
        Ok(CallResult::Timeout) => Err(CoreError::Overloaded {
            message: "The server is too busy to answer in time; try again".into(),
            retry_after: Duration::from_secs(2),
        }),
        // The actor dropped the reply: it failed mid-request, and its supervisor restarts it.
        Ok(CallResult::SenderError) => Err(CoreError::ActorGone),
        Err(_) => Err(CoreError::ActorGone),
    }
}
