//! deploy/omnichat.service holds what running as a daemon needs: restarts on failure, a state
//! directory the database points into, an environment file, no fixed root user, the usual
//! hardening, enough file descriptors for many streams, and a stop timeout longer than the
//! drain it waits for. (`deploy/check-unit.sh` has systemd itself check the syntax.)

use std::collections::HashMap;

/// The `[Service]` section's keys; a key given twice keeps every value.
fn service_section() -> HashMap<String, Vec<String>> {
    let unit = include_str!("../../deploy/omnichat.service");
    let mut in_service = false;
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').expect("key=value");
            keys.entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    keys
}

fn seconds(value: &str) -> u64 {
    value
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("seconds: {value}"))
}

#[test]
fn the_unit_restarts_keeps_state_is_hardened_and_outwaits_the_drain() {
    let service = service_section();
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("{key} is missing"));
        values.last().expect("a value")
    };
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("StateDirectory"), "omnichat");
    assert!(one("EnvironmentFile").ends_with("/etc/omnichat/omnichat.env"));
    assert_eq!(one("DynamicUser"), "yes");
    assert!(one("ExecStart").ends_with("omnichat serve"));
    let environment = &service["Environment"];
    assert!(
        environment
            .iter()
            .any(|e| e.starts_with("DATABASE_URL=sqlite:///var/lib/omnichat/")),
        "the database lives in the state directory: {environment:?}"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert!(one("RestrictAddressFamilies").contains("AF_INET6"));
    assert!(service["SystemCallFilter"].contains(&"@system-service".to_owned()));
    assert!(one("LimitNOFILE").parse::<u64>().unwrap() >= 65_536);
    // SIGTERM gives running answers the grace period, then 5 s for connections to flush, then
    // the final writes: systemd must not SIGKILL before that.
    let grace = environment
        .iter()
        .find_map(|e| e.strip_prefix("OMNICHAT_SHUTDOWN_GRACE_SECS="))
        .map(seconds)
        .expect("the unit names the grace period it plans for");
    assert!(
        seconds(one("TimeoutStopSec")) >= grace + 15,
        "TimeoutStopSec leaves room for the drain"
    );
}
