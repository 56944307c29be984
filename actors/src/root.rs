//! Root: the top of the actor tree. It starts the AuthActor and the SessionRegistry and restarts
//! either if it fails, publishing the fresh reference where the [`crate::Core`] handle reads it.

use std::sync::{atomic::AtomicUsize, Arc, RwLock};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::{
    auth::{
        AuthActor, AuthArgs, AuthMsg, Generations, JwtKeys, LoginThrottle, PasswordHasher,
        RevokedTokens,
    },
    config::Limits,
    metrics::Metrics,
    providers::Providers,
    session::{RegistryArgs, RegistryMsg, SessionRegistry},
    store::Store,
};

/// The current references to Root's children.
#[derive(Clone)]
pub struct Children {
    pub auth: ActorRef<AuthMsg>,
    pub registry: ActorRef<RegistryMsg>,
}

/// Shared between Root (which writes on restart) and the Core handle (which reads per request).
pub type ChildrenSlot = Arc<RwLock<Option<Children>>>;

pub struct RootArgs {
    pub store: Store,
    pub hasher: Arc<PasswordHasher>,
    pub keys: Arc<JwtKeys>,
    pub generations: Generations,
    pub revoked: RevokedTokens,
    pub throttle: LoginThrottle,
    pub providers: Providers,
    pub limits: Arc<Limits>,
    pub live: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
    pub slot: ChildrenSlot,
}

pub struct RootState {
    args: RootArgs,
    children: Children,
}

pub struct Root;

impl Actor for Root {
    type Msg = ();
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let auth = spawn_auth(&args, myself.get_cell()).await?;
        let registry = spawn_registry(&args, myself.get_cell()).await?;
        let children = Children { auth, registry };
        publish(&args.slot, &children);
        Ok(RootState { args, children })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = event else {
            return Ok(());
        };
        if cell.get_id() == state.children.auth.get_id() {
            tracing::error!(%err, "auth actor failed; restarting it");
            state.children.auth = spawn_auth(&state.args, myself.get_cell()).await?;
        } else if cell.get_id() == state.children.registry.get_id() {
            tracing::error!(%err, "session registry failed; restarting it");
            state.children.registry = spawn_registry(&state.args, myself.get_cell()).await?;
        }
        publish(&state.args.slot, &state.children);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        if let Ok(mut slot) = state.args.slot.write() {
            *slot = None;
        }
        Ok(())
    }
}

fn publish(slot: &ChildrenSlot, children: &Children) {
    if let Ok(mut slot) = slot.write() {
        *slot = Some(children.clone());
    }
}

async fn spawn_auth(
    args: &RootArgs,
    supervisor: ActorCell,
) -> Result<ActorRef<AuthMsg>, ActorProcessingErr> {
    let auth_args = AuthArgs {
        store: args.store.clone(),
        hasher: args.hasher.clone(),
        keys: args.keys.clone(),
        generations: args.generations.clone(),
        revoked: args.revoked.clone(),
        throttle: args.throttle.clone(),
    };
    let (auth, _) = Actor::spawn_linked(None, AuthActor, auth_args, supervisor).await?;
    Ok(auth)
}

async fn spawn_registry(
    args: &RootArgs,
    supervisor: ActorCell,
) -> Result<ActorRef<RegistryMsg>, ActorProcessingErr> {
    let registry_args = RegistryArgs {
        store: args.store.clone(),
        providers: args.providers.clone(),
        limits: args.limits.clone(),
        live: args.live.clone(),
        metrics: args.metrics.clone(),
    };
    let (registry, _) =
        Actor::spawn_linked(None, SessionRegistry, registry_args, supervisor).await?;
    Ok(registry)
}
