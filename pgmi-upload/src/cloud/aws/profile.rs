//! The shared AWS files: `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and
//! `~/.aws/config` (`AWS_CONFIG_FILE`), read for one profile (`AWS_PROFILE`, else
//! `default`).
//!
//! The format is the SDKs' INI dialect: `[name]` sections in the credentials file,
//! `[profile name]` (or `[default]`) in the config file, `key = value` lines, whole-line
//! `#` and `;` comments, and indented continuation lines (nested settings such as `s3 =`,
//! which a token does not need and are skipped). When both files have the profile, the
//! credentials file wins key by key, as in the SDKs.
//!
//! A profile may give static keys, or `web_identity_token_file` + `role_arn` (handed to
//! STS). Profiles that need SSO, `credential_process` or `source_profile` chaining are
//! not built: they stop the chain with a hint rather than being skipped, so another
//! identity is never used by surprise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::chain::{var, Found, Step};
use super::{sts, Keys};
use crate::cloud::Request;

/// One profile's settings, keys in lower case.
pub(crate) type Section = BTreeMap<String, String>;

/// The sections of one file, by section name as written (trimmed).
pub(crate) type Sections = BTreeMap<String, Section>;

/// Settings that mean "this profile gets credentials some way we do not build".
const NOT_BUILT: [&str; 6] = [
    "sso_session",
    "sso_start_url",
    "credential_process",
    "source_profile",
    "credential_source",
    "role_arn",
];

/// Source 2 of the chain.
pub(crate) fn credentials(region: &str, request: &Request<'_>) -> Step {
    let explicit = var(request, "AWS_PROFILE");
    let name = explicit.clone().unwrap_or_else(|| "default".to_string());
    let home = var(request, "HOME");
    // Files are named in messages by the variable or the default location, not by path
    // (a path from a *_CREDENTIALS_* variable is treated like a secret in the output).
    let file = |variable: &'static str, default: &'static str| -> Option<(PathBuf, String)> {
        match var(request, variable) {
            Some(path) => Some((
                PathBuf::from(expand_home(&path, request)),
                variable.to_string(),
            )),
            None => home.as_ref().map(|h| {
                (
                    PathBuf::from(h).join(".aws").join(default),
                    format!("~/.aws/{default}"),
                )
            }),
        }
    };
    let files = [
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
        (file("AWS_CONFIG_FILE", "config"), true),
    ];
    if files.iter().all(|(f, _)| f.is_none()) {
        return Step::Skip("no HOME to find ~/.aws in".to_string());
    }
    let mut merged = Section::new();
    let mut seen_in = Vec::new();
    let mut any_file = false;
    // Config first, so the credentials file overrides it key by key.
    for (file, is_config) in files.iter().rev() {
        let Some((path, label)) = file else { continue };
        let sections = match read(path, label) {
            Ok(Some(sections)) => sections,
            Ok(None) => continue,
            Err(why) => return Step::stop(why),
        };
        any_file = true;
        if let Some(section) = find(&sections, &name, *is_config) {
            seen_in.push(label.clone());
            merged.extend(section.clone());
        }
    }
    if seen_in.is_empty() {
        return match explicit {
            Some(_) => Step::stop_with(
                format!("profile {name:?} (AWS_PROFILE) is not in the shared credentials or config file"),
                "check AWS_PROFILE, or AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE if the files are elsewhere",
            ),
            None if any_file => Step::Skip("no [default] profile".to_string()),
            None => Step::Skip("no ~/.aws/credentials or ~/.aws/config".to_string()),
        };
    }
    seen_in.reverse();
    from_section(
        &name,
        &merged,
        &seen_in.join(" and "),
        explicit.is_some(),
        region,
        request,
    )
}

/// What a profile's merged settings give.
fn from_section(
    name: &str,
    section: &Section,
    files: &str,
    explicit: bool,
    region: &str,
    request: &Request<'_>,
) -> Step {
    let get = |key: &str| section.get(key).filter(|v| !v.is_empty()).cloned();
    if let Some(id) = get("aws_access_key_id") {
        let Some(secret) = get("aws_secret_access_key") else {
            return Step::stop(format!(
                "profile {name:?} in {files} has aws_access_key_id but no aws_secret_access_key"
            ));
        };
        return Step::Found(Found {
            keys: Keys::new(id, secret, get("aws_session_token")),
            source: format!("profile {name} ({files})"),
        });
    }
    if let (Some(token_file), Some(role_arn)) = (get("web_identity_token_file"), get("role_arn")) {
        let identity = sts::WebIdentity {
            token_file: expand_home(&token_file, request),
            token_file_label: format!("web_identity_token_file of profile {name}"),
            role_arn,
            session_name: get("role_session_name"),
            origin: format!("profile {name}"),
        };
        return sts::assume(&identity, region, request);
    }
    if let Some(key) = NOT_BUILT.iter().find(|k| get(k).is_some()) {
        return Step::stop_with(
            format!("profile {name:?} in {files} uses {key}, which pgmi-upload does not support"),
            format!("export the profile's keys for the run, e.g. `eval \"$(aws configure export-credentials --profile {name} --format env)\"`, or give static keys or web identity"),
        );
    }
    let why = format!("profile {name:?} in {files} has no credentials");
    if explicit {
        Step::stop(why)
    } else {
        Step::Skip(why)
    }
}

/// A path with a leading `~/` taken from `HOME`.
pub(crate) fn expand_home(path: &str, request: &Request<'_>) -> String {
    match (path.strip_prefix("~/"), var(request, "HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// The file's sections; `None` when it does not exist (which is not an error).
fn read(path: &std::path::Path, label: &str) -> Result<Option<Sections>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|why| format!("{label}: {why}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {label}: {e}")),
    }
}

/// The profile's section: `[name]` in the credentials file; `[profile name]` in the
/// config file, where the default profile may also be plain `[default]`.
fn find<'s>(sections: &'s Sections, name: &str, is_config: bool) -> Option<&'s Section> {
    if !is_config {
        return sections.get(name);
    }
    let prefixed = sections.iter().find_map(|(section, values)| {
        let rest = section.strip_prefix("profile")?;
        (rest.starts_with(char::is_whitespace) && rest.trim() == name).then_some(values)
    });
    prefixed.or_else(|| {
        (name == "default")
            .then(|| sections.get("default"))
            .flatten()
    })
}

/// Parse the INI dialect; an error names the line.
pub(crate) fn parse(text: &str) -> Result<Sections, String> {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    let mut last_key = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return Err(format!("line {number}: a section header needs a closing ]"));
            };
            let name = inner.split_whitespace().collect::<Vec<_>>().join(" ");
            if name.is_empty() {
                return Err(format!("line {number}: empty section name"));
            }
            sections.entry(name.clone()).or_default();
            current = Some(name);
            last_key = false;
            continue;
        }
        // An indented line continues the setting above it (a nested block): skipped.
        if raw.starts_with([' ', '\t']) && last_key {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {number}: expected key = value or [section]"));
        };
        let Some(section) = &current else {
            return Err(format!("line {number}: a setting before any [section]"));
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(format!("line {number}: a setting without a name"));
        }
        if let Some(values) = sections.get_mut(section) {
            values.insert(key, value.trim().to_string());
        }
        last_key = true;
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::chain::tests::with_env;

    #[test]
    fn parses_sections_keys_comments_and_nested_blocks() {
        let text = "# top comment\n[default]\naws_access_key_id=AKID1\n  ; indented comment\nAWS_Secret_Access_Key = s e c r e t \n\n[profile  ci ]\nregion = eu-west-1\ns3 =\n    max_concurrent_requests = 20\nrole_arn = arn:aws:iam::1:role/r\n";
        let sections = parse(text).unwrap();
        let default = &sections["default"];
        assert_eq!(default["aws_access_key_id"], "AKID1");
        // Keys are case-insensitive; values keep inner spaces.
        assert_eq!(default["aws_secret_access_key"], "s e c r e t");
        let ci = &sections["profile ci"];
        assert_eq!(ci["region"], "eu-west-1");
        assert_eq!(ci["s3"], "");
        assert!(!ci.contains_key("max_concurrent_requests"));
        assert_eq!(ci["role_arn"], "arn:aws:iam::1:role/r");
    }

    #[test]
    fn malformed_files_name_the_line() {
        for (text, needle) in [
            ("[default\nx=1\n", "line 1"),
            ("x = 1\n[default]\n", "line 1: a setting before"),
            ("[default]\njust words\n", "line 2"),
            ("[]\n", "empty section"),
            ("[a]\n = v\n", "without a name"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn config_sections_need_the_profile_prefix_except_default() {
        let sections =
            parse("[default]\na=1\n[profile dev]\nb=2\n[dev]\nc=3\n[sso-session x]\nd=4\n")
                .unwrap();
        assert_eq!(find(&sections, "default", true).unwrap()["a"], "1");
        assert_eq!(find(&sections, "dev", true).unwrap()["b"], "2");
        assert_eq!(find(&sections, "dev", false).unwrap()["c"], "3");
        assert!(find(&sections, "x", true).is_none());
        let prefixed_default = parse("[default]\na=1\n[profile default]\na=2\n").unwrap();
        assert_eq!(find(&prefixed_default, "default", true).unwrap()["a"], "2");
    }

    /// A home with the given `.aws/credentials` and `.aws/config` (empty: not written).
    fn home(credentials: &str, config: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        for (name, text) in [("credentials", credentials), ("config", config)] {
            if !text.is_empty() {
                std::fs::write(home.path().join(".aws").join(name), text).unwrap();
            }
        }
        home
    }

    fn run(home: &tempfile::TempDir, extra: &[(&str, &str)]) -> Step {
        let mut vars = vec![("HOME", home.path().to_str().unwrap())];
        vars.extend_from_slice(extra);
        with_env(&vars, |r| credentials("us-east-1", r))
    }

    #[test]
    fn aws_profile_picks_the_profile_and_credentials_override_config() {
        let home = home(
            "[default]\naws_access_key_id=AKIDDEFAULT\naws_secret_access_key=d\n[dev]\naws_secret_access_key=from-credentials\n",
            "[profile dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key=from-config\naws_session_token=tok-dev\n",
        );
        let Step::Found(found) = run(&home, &[("AWS_PROFILE", "dev")]) else {
            panic!("no keys")
        };
        assert_eq!(found.keys.access_key_id, "AKIDDEV");
        assert_eq!(found.keys.secret_access_key, "from-credentials");
        assert_eq!(found.keys.session_token.as_deref(), Some("tok-dev"));
        assert!(
            found.source.starts_with("profile dev ("),
            "{}",
            found.source
        );
        let Step::Found(found) = run(&home, &[]) else {
            panic!("no keys")
        };
        assert_eq!(found.keys.access_key_id, "AKIDDEFAULT");
    }

    #[test]
    fn file_locations_come_from_the_variables() {
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("creds.ini");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id=AKIDX\naws_secret_access_key=x\n",
        )
        .unwrap();
        let empty_home = home("", "");
        let Step::Found(found) = run(
            &empty_home,
            &[("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())],
        ) else {
            panic!("no keys")
        };
        assert_eq!(found.keys.access_key_id, "AKIDX");
    }

    #[test]
    fn unconfigured_profiles_are_skipped_and_broken_ones_stop() {
        let skip = |step: Step| matches!(step, Step::Skip(_));
        let stop = |step: &Step, needle: &str| matches!(step, Step::Stop { why, .. } if why.contains(needle));
        assert!(skip(run(&home("", ""), &[])));
        assert!(skip(run(
            &home(
                "[other]\naws_access_key_id=A\naws_secret_access_key=B\n",
                ""
            ),
            &[]
        )));
        // A default profile with settings but no credentials: not a credential source.
        assert!(skip(run(&home("", "[default]\nregion=eu-west-1\n"), &[])));
        // Named on purpose, so it must be there and give keys.
        let step = run(&home("", ""), &[("AWS_PROFILE", "missing")]);
        assert!(stop(&step, "\"missing\""));
        let step = run(
            &home("", "[profile r]\nregion=x\n"),
            &[("AWS_PROFILE", "r")],
        );
        assert!(stop(&step, "no credentials"));
        let step = run(&home("[default]\naws_access_key_id=A\n", ""), &[]);
        assert!(stop(&step, "no aws_secret_access_key"));
        let step = run(&home("[default\n", ""), &[]);
        assert!(stop(&step, "line 1"));
        let step = run(&home("", "[default]\nsso_session = corp\n"), &[]);
        assert!(
            matches!(&step, Step::Stop { why, hint: Some(hint) } if why.contains("sso_session") && hint.contains("export-credentials"))
        );
        let step = run(
            &home(
                "",
                "[default]\nrole_arn=arn:aws:iam::1:role/r\nsource_profile=base\n",
            ),
            &[],
        );
        assert!(stop(&step, "does not support"));
    }

    #[test]
    fn profile_web_identity_reads_the_token_file() {
        let home = home(
            "",
            "[profile ci]\nrole_arn = arn:aws:iam::123456789012:role/ci\nweb_identity_token_file = ~/missing-token\n",
        );
        let step = run(&home, &[("AWS_PROFILE", "ci")]);
        assert!(
            matches!(&step, Step::Stop { why, .. } if why.contains("web_identity_token_file of profile ci")),
        );
        let expanded = with_env(&[("HOME", "/home/ci")], |r| expand_home("~/t/token", r));
        assert_eq!(expanded, "/home/ci/t/token");
        let kept = with_env(&[("HOME", "/home/ci")], |r| expand_home("/abs/~/token", r));
        assert_eq!(kept, "/abs/~/token");
    }
}
