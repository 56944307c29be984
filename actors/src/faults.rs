//! Test-only faults, compiled in only with the `fault-injection` cargo feature (never in a
//! release build): a prompt carrying a marker makes an actor panic, so tests can prove that
//! supervision contains the damage.

/// A generation whose answer contains this word panics while streaming it.
pub const PANIC_GENERATION: &str = "omnichat-fault:panic-generation";
/// A SessionActor asked to answer a prompt containing this word panics.
pub const PANIC_SESSION: &str = "omnichat-fault:panic-session";

pub fn maybe_panic_generation(text: &str) {
    if text.contains(PANIC_GENERATION) {
        panic!("injected fault: generation panic");
    }
}

pub fn maybe_panic_session(prompt: &str) {
    if prompt.contains(PANIC_SESSION) {
        panic!("injected fault: session actor panic");
    }
}
