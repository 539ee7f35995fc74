//! Running the binary: `stoker apikey create`, and the `stoker` child
//! process of the test kit (stopped on drop) started from this build.

use std::process::Command;

use stoker_testkit::{StokerCommand, StokerProcess};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_stoker");

/// Creates an API key with `stoker apikey create` against the database at
/// `database_url` and returns the token it prints.
pub(crate) fn create_api_key(database_url: &str, name: &str, scopes: &str) -> String {
    let output = Command::new(BINARY)
        .args(["apikey", "create", "--name", name, "--scopes", scopes])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the stoker binary");
    assert!(
        output.status.success(),
        "stoker apikey create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("a UTF-8 token");
    let token = token.trim().to_owned();
    assert!(token.starts_with("stk_"), "{token}");
    token
}

/// Starts `stoker <command>` with these environment variables (at
/// `RUST_LOG=warn` unless they say otherwise); interrupted on drop.
pub(crate) fn spawn_stoker(command: &str, environment: &[(&str, String)]) -> StokerProcess {
    StokerCommand::new(BINARY, command)
        .envs(environment)
        .spawn()
        .expect("run the stoker binary")
}

/// A path as an environment variable's value.
pub(crate) fn env_path(path: &std::path::Path) -> String {
    path.display().to_string()
}
