//! The Azure CLI's login: `az account get-access-token` for the database resource. This is
//! what a developer's `az login` gives, and what GitHub Actions' `azure/login` sets up.
//!
//! `az` is looked up on the request's `PATH` and run with a time limit (it can hang on a
//! broken network or a prompt). "Not installed" and "not logged in" move on (it is the
//! last source, so they end up in the error); its stderr is shown trimmed, without any
//! line that could be a token.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{first_line, seconds, valid_tenant, Context, Step, RESOURCE};
use crate::cloud::Token;

/// How long `az` may take.
const TIMEOUT: Duration = Duration::from_secs(10);

const HINT: &str = "run `az login` (and `az account get-access-token --resource https://ossrdbms-aad.database.windows.net` to check), or use another credential source";

#[cfg(windows)]
const NAMES: &[&str] = &["az.cmd", "az.exe"];
#[cfg(not(windows))]
const NAMES: &[&str] = &["az"];

pub(super) fn token(cx: &Context<'_, '_>) -> Step {
    let Some(az) = cx.env("PATH").and_then(|path| find(&path)) else {
        return Step::Skip("az not found on PATH".to_string());
    };
    if let Some(tenant) = cx.tenant {
        if let Err(why) = valid_tenant(tenant) {
            return Step::fail(why, HINT);
        }
    }
    let args = arguments(cx.tenant);
    let output = match run(&az, &args) {
        Ok(output) => output,
        Err(why) => return Step::Skip(format!("{}: {why}", az.display())),
    };
    if !output.success {
        return Step::Skip(format!("az: {}", explain(&output.stderr)));
    }
    match parse(&output.stdout) {
        Ok((secret, expires_at)) => Step::Got(Token {
            secret,
            expires_at,
            source: "the Azure CLI's login (az account get-access-token)".to_string(),
        }),
        Err(why) => Step::fail(format!("az account get-access-token: {why}"), HINT),
    }
}

/// `az`'s arguments.
fn arguments(tenant: Option<&str>) -> Vec<&str> {
    let mut args = vec![
        "account",
        "get-access-token",
        "--output",
        "json",
        "--resource",
        RESOURCE,
    ];
    if let Some(tenant) = tenant {
        args.extend(["--tenant", tenant]);
    }
    args
}

/// The first executable `az` in the directories of `path`.
fn find(path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|candidate| executable(candidate))
}

#[cfg(unix)]
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable(path: &Path) -> bool {
    path.is_file()
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Run `program args`, killing it after [`TIMEOUT`].
fn run(program: &Path, args: &[&str]) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it ({e})"))?;
    // Read both pipes on their own threads, so a full pipe cannot stall the child.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("cannot wait for it ({e})")),
        }
    };
    Ok(Output {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// What `az` said on stderr, shortened: `ERROR:` prefixes dropped, and any line that
/// could hold a token (a JWT starts with `eyJ`) left out.
fn explain(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim())
        .map(|l| l.strip_prefix("ERROR:").unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.contains("eyJ"))
        .take(3)
        .collect();
    if lines.is_empty() {
        "failed without saying why".to_string()
    } else {
        first_line(&lines.join(" "))
    }
}

/// The token and its expiry from `az`'s JSON: `accessToken`, and `expires_on` (seconds
/// since the epoch; CLI 2.54 and later). Older CLIs give only `expiresOn` in local time
/// without a zone, which is not guessed at.
fn parse(stdout: &str) -> Result<(String, Option<SystemTime>), String> {
    let json: Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("the output is not JSON ({e})"))?;
    let token = json
        .get("accessToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the output has no accessToken")?;
    let expires_at = json
        .get("expires_on")
        .and_then(seconds)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    Ok((token.to_string(), expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_ask_for_the_database_resource() {
        assert_eq!(
            arguments(None).join(" "),
            "account get-access-token --output json --resource https://ossrdbms-aad.database.windows.net"
        );
        assert!(arguments(Some("t-1")).join(" ").ends_with(" --tenant t-1"));
    }

    #[test]
    fn output_with_and_without_expires_on() {
        let (token, at) = parse(
            r#"{"accessToken":"tok","expiresOn":"2026-12-04 19:00:00.000000","expires_on":1796410800,"tokenType":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(token, "tok");
        assert_eq!(at, Some(UNIX_EPOCH + Duration::from_secs(1796410800)));
        let (_, at) =
            parse(r#"{"accessToken":"tok","expiresOn":"2026-12-04 19:00:00.000000"}"#).unwrap();
        assert_eq!(at, None);
        assert!(parse(r#"{"expires_on":1}"#)
            .unwrap_err()
            .contains("accessToken"));
        assert!(parse("Please run az login")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn stderr_is_shortened_and_never_shows_a_token() {
        assert_eq!(
            explain("ERROR: Please run 'az login' to setup account.\n"),
            "Please run 'az login' to setup account."
        );
        assert_eq!(
            explain("ERROR: bad eyJhbGciOi.x.y\n"),
            "failed without saying why"
        );
        assert_eq!(explain(""), "failed without saying why");
    }

    #[test]
    fn az_is_found_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        let az = dir.path().join(NAMES[0]);
        std::fs::write(&az, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().display().to_string();
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(find(&path), None);
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
            assert_eq!(find(&format!("/nonexistent:{path}")), Some(az));
        }
    }
}
