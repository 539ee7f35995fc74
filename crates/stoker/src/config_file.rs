//! The optional TOML settings file. Its keys are the environment variable
//! names (`INFLUX_URL = "…"`), so there is one vocabulary for settings. A
//! value from the file becomes the option's default: a flag or an
//! environment variable still overrides it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Command;

/// The file named by `--config FILE`, `--config=FILE` or `STOKER_CONFIG`.
pub(crate) fn named_in(arguments: &[OsString]) -> Option<PathBuf> {
    let mut iter = arguments.iter().skip(1);
    while let Some(argument) = iter.next() {
        let text = argument.to_string_lossy();
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("STOKER_CONFIG").map(PathBuf::from)
}

/// Reads the file into variable name → value text.
pub(crate) fn load(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let mut settings = BTreeMap::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            other => bail!(
                "config file {}: {key} must be a string, number or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        };
        settings.insert(key, text);
    }
    Ok(settings)
}

/// Sets the file's values as defaults of the options reading those
/// variables, in every subcommand. Unknown keys are an error, naming the
/// known ones.
pub(crate) fn apply_defaults(
    command: Command,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<Command> {
    let mut known = std::collections::BTreeSet::new();
    collect_variables(&command, &mut known);
    let unknown: Vec<&String> = settings
        .keys()
        .filter(|key| !known.contains(key.as_str()))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<String> = known.into_iter().collect();
        bail!(
            "config file: unknown setting(s) {unknown:?}; known settings: {}",
            known.join(", ")
        );
    }
    Ok(with_defaults(command, settings))
}

fn collect_variables(command: &Command, known: &mut std::collections::BTreeSet<String>) {
    for argument in command.get_arguments() {
        if let Some(variable) = argument.get_env() {
            known.insert(variable.to_string_lossy().into_owned());
        }
    }
    for subcommand in command.get_subcommands() {
        collect_variables(subcommand, known);
    }
}

fn with_defaults(command: Command, settings: &BTreeMap<String, String>) -> Command {
    let command = command.mut_args(|argument| {
        let value = argument
            .get_env()
            .and_then(|variable| settings.get(variable.to_string_lossy().as_ref()));
        match value {
            Some(value) => argument.default_value(value.clone()),
            None => argument,
        }
    });
    command.mut_subcommands(|subcommand| with_defaults(subcommand, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    use crate::cli::{Cli, Command as Sub};

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn file_values_become_defaults_and_flags_still_win() {
        let file = settings(&[("INFLUX_BUCKET", "plant"), ("HTTP_ADDR", "127.0.0.1:9999")]);
        let command = apply_defaults(Cli::command(), &file).unwrap();
        let matches = command
            .try_get_matches_from(["stoker", "serve", "--http-addr", "127.0.0.1:7000"])
            .unwrap();
        let Cli {
            command: Sub::Serve(serve),
            ..
        } = Cli::from_arg_matches(&matches).unwrap()
        else {
            panic!("serve expected");
        };
        assert_eq!(serve.stores.influx.bucket, "plant");
        assert_eq!(serve.http.addr.port(), 7000);
    }

    #[test]
    fn unknown_keys_are_refused_with_the_known_ones() {
        let error = apply_defaults(Cli::command(), &settings(&[("INFLUX_BUKET", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("INFLUX_BUKET") && error.contains("INFLUX_BUCKET"),
            "{error}"
        );
    }

    #[test]
    fn the_file_is_named_by_flag_or_variable() {
        let arguments: Vec<OsString> = ["stoker", "serve", "--config", "a.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(named_in(&arguments), Some(PathBuf::from("a.toml")));
        let arguments: Vec<OsString> = ["stoker", "--config=b.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(named_in(&arguments), Some(PathBuf::from("b.toml")));
    }
}
