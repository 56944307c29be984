//! README's configuration table and the binary's `--help` say the same thing: every setting of
//! `omnichat serve` has a flag, an environment variable and a help line, every variable is in the
//! table and every variable in the table is a setting, and the defaults agree.

use std::{collections::BTreeMap, process::Command};

use clap::CommandFactory;
use omnichat::config::Cli;

/// Variables in the table that are not flags: read by the logger itself.
const NOT_FLAGS: [&str; 1] = ["RUST_LOG"];

/// README's table: each variable with its default when the cell gives one in backticks.
fn readme_table() -> BTreeMap<String, Option<String>> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("a Configuration section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let variable = cells[0]
            .trim_start_matches("| ")
            .strip_prefix('`')
            .and_then(|v| v.strip_suffix('`'))
            .unwrap_or_else(|| panic!("one variable per row: {row}"));
        assert!(
            variable
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "a variable name: {row}"
        );
        let default = cells[1].trim();
        let default = default
            .strip_prefix('`')
            .and_then(|d| d.strip_suffix('`'))
            .map(str::to_owned);
        assert!(
            table.insert(variable.to_owned(), default).is_none(),
            "{variable} twice"
        );
    }
    table
}

/// The settings of `command`: each variable with its default.
fn settings(command: &clap::Command) -> BTreeMap<String, Option<String>> {
    command
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .map(|arg| {
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{} has no environment variable", arg.get_id()))
                .to_string_lossy()
                .into_owned();
            assert!(arg.get_long().is_some(), "{env} has no flag of its own");
            assert!(
                arg.get_help().is_some(),
                "--{} has no help line",
                arg.get_id()
            );
            let defaults = arg.get_default_values();
            assert!(defaults.len() <= 1, "{env}: one default");
            let default = defaults.first().map(|d| d.to_string_lossy().into_owned());
            (env, default)
        })
        .collect()
}

#[test]
fn readme_table_and_help_agree() {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve subcommand");
    let from_help = settings(serve);
    assert_eq!(
        settings(&cli),
        from_help,
        "`omnichat` takes the same settings as `omnichat serve`"
    );
    let mut from_readme = readme_table();
    for variable in NOT_FLAGS {
        assert!(
            from_readme.remove(variable).is_some(),
            "{variable} in README"
        );
    }
    let missing: Vec<&String> = from_help
        .keys()
        .filter(|v| !from_readme.contains_key(*v))
        .collect();
    assert!(
        missing.is_empty(),
        "settings missing from README: {missing:?}"
    );
    let stale: Vec<&String> = from_readme
        .keys()
        .filter(|v| !from_help.contains_key(*v))
        .collect();
    assert!(
        stale.is_empty(),
        "README lists what is no setting: {stale:?}"
    );
    for (variable, default) in &from_help {
        assert_eq!(
            &from_readme[variable], default,
            "{variable}: README's default against the flag's"
        );
    }
}

#[test]
fn help_output_shows_every_variable_and_default() {
    for args in [&["--help"][..], &["serve", "--help"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_omnichat"))
            .args(args)
            .env_clear()
            .output()
            .expect("run omnichat --help");
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        for (variable, default) in settings(Cli::command().find_subcommand("serve").unwrap()) {
            assert!(
                help.contains(&format!("[env: {variable}")),
                "{args:?}: {variable} not in the help"
            );
            if let Some(default) = default {
                assert!(
                    help.contains(&format!("[default: {default}]")),
                    "{args:?}: default {default} of {variable} not in the help"
                );
            }
        }
    }
}
