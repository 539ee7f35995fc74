//! `stoker mqtt credentials`: a user and a random password for Mosquitto's
//! password file, in the format `mosquitto_passwd` of Mosquitto 2.0 writes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};

use crate::cli::{MqttCommand, MqttCredentialsArgs};

/// Service users are `svc.NAME`: a site slug never holds a ".", so no
/// site's gateway can be given a service's user (and its rights).
const SERVICE_PREFIX: &str = "svc.";

/// The service user the shipped ACL (docker/mosquitto/acl) knows.
const STOKER_SERVICE: &str = "stoker";

/// PBKDF2 iterations, as `mosquitto_passwd` 2.0 uses. The passwords are
/// 256 random bits, which no amount of guessing reaches: stretching them
/// further would only cost the broker time at every CONNECT.
const ITERATIONS: u32 = 101;

/// Salt length of `mosquitto_passwd` 2.0.
const SALT_BYTES: usize = 12;

/// Letters and digits: 43 of them carry 256 bits, and they need no
/// escaping in a URL (MQTT_URL), a shell or a gateway's configuration.
const PASSWORD_CHARS: usize = 43;

pub(super) fn run(command: MqttCommand) -> anyhow::Result<ExitCode> {
    match command {
        MqttCommand::Credentials(args) => credentials(&args),
    }
}

fn credentials(args: &MqttCredentialsArgs) -> anyhow::Result<ExitCode> {
    let user = match user_name(args) {
        Ok(user) => user,
        Err(message) => {
            eprintln!("stoker mqtt credentials: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let password = Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_CHARS);
    let mut salt = [0_u8; SALT_BYTES];
    rand::rng().fill(&mut salt[..]);
    let line = password_line(&user, &password, &salt, ITERATIONS);

    match &args.password_file {
        Some(path) => {
            // The file first: no password is shown for a line that was not written.
            let replaced = update_password_file(path, &user, &line)
                .with_context(|| format!("writing Mosquitto's password file {}", path.display()))?;
            println!("{password}");
            eprintln!(
                "{} user {user} in {}; reload the broker to apply it: \
                 docker compose kill -s SIGHUP mosquitto (or kill -HUP <mosquitto pid>)",
                if replaced { "replaced" } else { "added" },
                path.display()
            );
        }
        None => {
            println!("{password}");
            eprintln!(
                "user {user}: add this line to Mosquitto's password file (or use --password-file), \
                 then reload the broker (SIGHUP):"
            );
            eprintln!("{line}");
        }
    }
    match (&args.site, &args.service) {
        (Some(site), _) => eprintln!(
            "gateway user {user} may publish only under sites/{site}/ (docker/mosquitto/acl)"
        ),
        (None, Some(service)) if service == STOKER_SERVICE => eprintln!(
            "Stoker's processes log in with MQTT_URL=mqtt://{user}:<password>@<broker>:1883"
        ),
        (None, _) => eprintln!(
            "the shipped ACL grants {user} nothing: add a `user {user}` block with its topics to the ACL file"
        ),
    }
    eprintln!("the password is shown only this once: store it now");
    Ok(ExitCode::SUCCESS)
}

/// The site's slug, or `svc.NAME` for a service.
fn user_name(args: &MqttCredentialsArgs) -> Result<String, String> {
    match (&args.site, &args.service) {
        (Some(site), None) => stoker_domain::SiteSlug::parse(site.as_str())
            .map(|slug| slug.as_str().to_owned())
            .map_err(|error| format!("--site: {error}")),
        (None, Some(service)) => stoker_domain::SiteSlug::parse(service.as_str())
            .map(|name| format!("{SERVICE_PREFIX}{name}"))
            .map_err(|error| {
                format!("--service: {error} (the same rule as site slugs; the user is svc.NAME)")
            }),
        _ => Err("give exactly one of --site and --service".to_owned()),
    }
}

/// `user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`, the
/// line Mosquitto 2.0's password file holds (standard base64, padded; a
/// 64-byte hash).
fn password_line(user: &str, password: &str, salt: &[u8], iterations: u32) -> String {
    let mut hash = [0_u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, iterations, &mut hash);
    format!(
        "{user}:$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// The file's text with `user`'s line replaced by `line` (the first one;
/// any later duplicates dropped) or, if it has none, `line` appended. Every
/// other line is kept as it is. Returns whether a line was replaced.
fn splice(existing: &str, user: &str, line: &str) -> (String, bool) {
    let mut text = String::with_capacity(existing.len() + line.len() + 1);
    let mut replaced = false;
    for old in existing.lines() {
        if old.split_once(':').is_some_and(|(name, _)| name == user) {
            if !replaced {
                text.push_str(line);
                text.push('\n');
                replaced = true;
            }
            continue;
        }
        text.push_str(old);
        text.push('\n');
    }
    if !replaced {
        text.push_str(line);
        text.push('\n');
    }
    (text, replaced)
}

/// Adds or replaces `user`'s line in the password file at `path`,
/// atomically: the new text goes to a temporary file beside it (same owner
/// and mode as the old file; 0600 for a new one), is synced, then renamed
/// over it, so the broker never reads half a file. A symbolic link is
/// followed, and its target replaced.
fn update_password_file(path: &Path, user: &str, line: &str) -> io::Result<bool> {
    let path = match fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(error) if error.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(error) => return Err(error),
    };
    let (existing, metadata) = match fs::read_to_string(&path) {
        Ok(text) => (text, Some(fs::metadata(&path)?)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => (String::new(), None),
        Err(error) => return Err(error),
    };
    let (text, replaced) = splice(&existing, user, line);

    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let temporary = directory.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        Alphanumeric.sample_string(&mut rand::rng(), 12)
    ));
    let written = write_new(&temporary, &text, metadata.as_ref())
        .and_then(|()| fs::rename(&temporary, &path));
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    // The rename itself survives a crash once the directory is synced.
    fs::File::open(&directory)?.sync_all()?;
    Ok(replaced)
}

/// Creates `path` (it must not exist) with `text`, the owner and mode of
/// `like` (when given), and syncs it.
fn write_new(path: &Path, text: &str, like: Option<&fs::Metadata>) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    if let Some(like) = like {
        // Mosquitto reads the file as its own user after dropping
        // privileges (on SIGHUP too): keep whatever let it read the old one.
        file.set_permissions(like.permissions())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let own = file.metadata()?;
            if (own.uid(), own.gid()) != (like.uid(), like.gid()) {
                std::os::unix::fs::fchown(&file, Some(like.uid()), Some(like.gid())).map_err(
                    |error| {
                        io::Error::new(
                            error.kind(),
                            format!(
                                "cannot give the new file the old one's owner {}:{} ({error}); \
                                 run as that user or as root",
                                like.uid(),
                                like.gid()
                            ),
                        )
                    },
                )?;
            }
        }
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mosquitto_passwd -b -c FILE user pw` of Mosquitto 2.0.11.
    const MOSQUITTO_PASSWD_LINE: &str = "user:$7$101$8iEHmIV9fvcpEJzk$1oPAbY31M61uQEspgq/GrH+zBpdsjARXSEsTkgznmAXwtOCLhlLFVRA8N/vt3t044WgtF2U4H0Uo2syFQlgW2A==";

    #[test]
    fn lines_are_those_mosquitto_passwd_writes() {
        let salt = STANDARD.decode("8iEHmIV9fvcpEJzk").expect("base64 salt");
        assert_eq!(salt.len(), SALT_BYTES);
        assert_eq!(
            password_line("user", "pw", &salt, ITERATIONS),
            MOSQUITTO_PASSWD_LINE
        );
    }

    #[test]
    fn service_users_cannot_be_site_users() {
        let args = |site: Option<&str>, service: Option<&str>| MqttCredentialsArgs {
            site: site.map(str::to_owned),
            service: service.map(str::to_owned),
            password_file: None,
        };
        assert_eq!(
            user_name(&args(Some("site-a"), None)).as_deref(),
            Ok("site-a")
        );
        assert_eq!(
            user_name(&args(None, Some("stoker"))).as_deref(),
            Ok("svc.stoker")
        );
        // A "/" would reach another site's topics through `sites/%u/#`.
        for bad in ["site/a", "a+", "#", "svc.stoker", "", "Site"] {
            assert!(user_name(&args(Some(bad), None)).is_err(), "{bad}");
            assert!(user_name(&args(None, Some(bad))).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_users_line_is_replaced_and_every_other_kept() {
        let existing = "# kept\nsite-a:old\nsite-ab:other\n\nsite-a:duplicate\nsvc.stoker:x";
        let (text, replaced) = splice(existing, "site-a", "site-a:new");
        assert!(replaced);
        assert_eq!(text, "# kept\nsite-a:new\nsite-ab:other\n\nsvc.stoker:x\n");
        let (text, replaced) = splice("svc.stoker:x", "site-b", "site-b:new");
        assert!(!replaced);
        assert_eq!(text, "svc.stoker:x\nsite-b:new\n");
        assert_eq!(splice("", "a", "a:1"), ("a:1\n".to_owned(), false));
    }

    #[test]
    fn the_file_is_replaced_with_its_mode_kept() {
        let directory = std::env::temp_dir().join(format!(
            "stoker-mqtt-test-{}",
            Alphanumeric.sample_string(&mut rand::rng(), 12)
        ));
        fs::create_dir_all(&directory).expect("temporary directory");
        let path = directory.join("passwd");

        assert!(!update_password_file(&path, "site-a", "site-a:1").expect("create"));
        assert!(!update_password_file(&path, "site-b", "site-b:1").expect("add"));
        assert!(update_password_file(&path, "site-a", "site-a:2").expect("replace"));
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "site-a:2\nsite-b:1\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| fs::metadata(path).expect("metadata").permissions().mode();
            assert_eq!(mode(&path) & 0o777, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
            update_password_file(&path, "site-b", "site-b:2").expect("replace");
            assert_eq!(mode(&path) & 0o777, 0o640);
        }
        // Nothing left behind but the file.
        let names: Vec<_> = fs::read_dir(&directory)
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["passwd"]);
        fs::remove_dir_all(&directory).expect("clean up");
    }
}
