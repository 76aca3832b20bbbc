//! Everything decided before any connection (parameters, connection settings, `deploy.sql`,
//! the project scan and bundle), so that exit 10 and 14 mean "nothing on any server was
//! touched".
//!
//! Deliberate differences from the original pgmi, all in the direction of failing earlier:
//! * parameter keys and values are validated here, not after connecting;
//! * a `deploy.sql` that is not UTF-8 or holds a NUL byte is refused here (exit 10), not
//!   at execution time (exit 1);
//! * every project scan error exits 10, not 1: they are configuration errors.
//!
//! Parameter names and values are never printed; errors name the key at most.

use std::path::{Path, PathBuf};

use pgmi_core::limits::Limits;
use pgmi_core::project::{self, ErrorKind, Project, ProjectError, RawFile};

use crate::conninfo::EnvLookup;
use crate::exit::{Exit, Failure};

/// Merge `--params-file`s (in order) and then `--param`s (later wins); format errors only.
pub fn collect_params(files: &[PathBuf], cli: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let mut pairs = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| {
            Failure::config(format!(
                "could not read parameters file {}: {e}",
                file.display()
            ))
        })?;
        let parsed = pgmi_core::params::parse_params_file(&bytes).map_err(|e| {
            let hint = e.hint();
            let failure = Failure::config(format!("parameters file {}: {e}", file.display()));
            match hint {
                Some(h) => failure.with_hint(h),
                None => failure,
            }
        })?;
        pairs.extend(parsed);
    }
    for arg in cli {
        pairs.push(pgmi_core::params::parse_cli_arg(arg).map_err(param_failure)?);
    }
    Ok(pairs)
}

/// Validate keys and values, lower-case keys, reject keys that collide.
/// Values of keys that look secret (`pgmi_core::params::looks_secret`) are registered for
/// redaction: no output of this process shows them, even when the server echoes them.
pub fn finalize_params(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, Failure> {
    let params = pgmi_core::params::finalize(pairs).map_err(param_failure)?;
    for (key, value) in &params {
        if pgmi_core::params::looks_secret(key) {
            crate::redact::register_secret(value);
        }
    }
    Ok(params)
}

fn param_failure(e: pgmi_core::params::ParamError) -> Failure {
    let hint = e.hint();
    let failure = Failure::config(e.to_string());
    match hint {
        Some(h) => failure.with_hint(h),
        None => failure,
    }
}

/// `--param-var KEY=VAR` values: the key follows the parameter rules (and is lower-cased),
/// the psql variable name is letters, digits and underscores, and no key is given twice or
/// also as a plain parameter.
pub fn param_vars(
    args: &[String],
    params: &[(String, String)],
) -> Result<Vec<crate::psql_script::ParamVar>, Failure> {
    let mut out: Vec<crate::psql_script::ParamVar> = Vec::new();
    for arg in args {
        let (key, var) = arg.split_once('=').ok_or_else(|| {
            Failure::config(format!("invalid --param-var {arg:?}: expected KEY=VAR"))
        })?;
        pgmi_core::params::validate_key(key).map_err(param_failure)?;
        let key = key.to_ascii_lowercase();
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Failure::config(format!(
                "invalid --param-var {arg:?}: the psql variable name must be letters, digits and underscores"
            )));
        }
        if params.iter().any(|(k, _)| *k == key) || out.iter().any(|v| v.key == key) {
            return Err(
                Failure::config(format!("parameter \"{key}\" is given more than once")).with_hint(
                    "give each parameter once: as --param, in a --params-file, or as --param-var",
                ),
            );
        }
        out.push(crate::psql_script::ParamVar {
            key,
            var: var.to_string(),
        });
    }
    Ok(out)
}

/// Scan limits; `PGMI_MAX_FILE_SIZE` (positive bytes) overrides the per-file cap.
pub fn limits(env: EnvLookup<'_>) -> Result<Limits, Failure> {
    let mut limits = Limits::default();
    if let Some(text) = env("PGMI_MAX_FILE_SIZE") {
        limits.max_file_bytes = text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Failure::config(format!(
                    "invalid PGMI_MAX_FILE_SIZE {text:?}: expected a positive number of bytes"
                ))
            })?;
    }
    Ok(limits)
}

/// Read `<root>/deploy.sql`: the root must be a directory (exit 10), the script must exist
/// (exit 14), be UTF-8 and hold no NUL byte (exit 10). One leading BOM is stripped.
pub fn read_script(root: &Path) -> Result<String, Failure> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Failure::config(format!(
                "project path {} is not a directory",
                root.display()
            ))
            .with_hint("pass the project directory (the one holding deploy.sql), not a file"))
        }
        Err(_) => {
            return Err(Failure::config(format!(
                "project directory {} does not exist",
                root.display()
            ))
            .with_hint("check the project path; it must be the directory that holds deploy.sql"))
        }
    }
    let path = root.join("deploy.sql");
    if path.is_dir() {
        return Err(
            Failure::config(format!("{} is a directory, not a file", path.display()))
                .with_hint("deploy.sql must be a file at the project's root; rename the directory"),
        );
    }
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Failure::new(
            Exit::DeploySqlNotFound,
            format!("deploy.sql not found in {}", root.display()),
        )
        .with_hint(
            "every pgmi project has a deploy.sql at its root; it decides what runs, in plain SQL",
        )),
        Err(e) => {
            return Err(Failure::new(
                Exit::General,
                format!("could not read {}: {e}", path.display()),
            ))
        }
    };
    script_text(bytes)
}

fn script_text(mut bytes: Vec<u8>) -> Result<String, Failure> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if let Some(offset) = bytes.iter().position(|b| *b == 0) {
        return Err(Failure::config(format!(
            "deploy.sql contains a NUL byte at byte offset {offset}; PostgreSQL cannot execute it"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Failure::config(format!(
            "deploy.sql is not valid UTF-8; the first invalid byte is at offset {}",
            e.utf8_error().valid_up_to()
        ))
        .with_hint("save deploy.sql as UTF-8")
    })
}

/// The scanned project, validated; ready for either session kind.
pub struct Packed {
    /// Every file's rows, as the portable session loads them, checked; the checksums are
    /// filled in by [`Packed::hashed_project`], since an extension session never needs them.
    pub project: Project,
    hashed: bool,
    /// The parameters, validated and with lower-cased keys.
    pub params: Vec<(String, String)>,
    /// Files scanned (the original pgmi's `filesLoaded`, before the server confirms it).
    pub files: usize,
    /// `pgmi_loader.max_file_size` for the load, in kB; set when `PGMI_MAX_FILE_SIZE` is.
    pub server_max_file_kb: Option<u32>,
    /// The files as read, kept to write the extension's bundle once that kind is chosen.
    raw: Vec<RawFile>,
    max_bundle_bytes: u64,
    bundle: Option<Vec<u8>>,
    /// The bundle written while the project was checked ([`pack`]), not yet size-checked.
    early: Option<Result<Vec<u8>, pgmi_core::bundle::BundleError>>,
}

impl Packed {
    /// The project with its checksums, computed on first use (the portable session sends
    /// them; the extension computes its own from the bundle).
    pub fn hashed_project(&mut self) -> &Project {
        if !self.hashed {
            project::hash(&mut self.project);
            self.hashed = true;
        }
        &self.project
    }

    /// The bundle [`Packed::bundle`] wrote; empty if it was never asked for.
    pub fn built_bundle(&self) -> &[u8] {
        self.bundle.as_deref().unwrap_or_default()
    }

    /// The tar.gz bundle for the extension's loader, written on first use: a portable
    /// session never needs it, and compressing a large project costs real time.
    pub fn bundle(&mut self) -> Result<&[u8], Failure> {
        if self.bundle.is_none() {
            let written = match self.early.take() {
                Some(early) => early,
                None => {
                    let phase = crate::progress::Phase::start(crate::progress::Shape {
                        label: "Packing",
                        files: true,
                        total_bytes: None,
                        rate: false,
                    });
                    phase.counters().add_files(self.raw.len() as u64);
                    phase
                        .counters()
                        .add_bytes(self.raw.iter().map(|f| f.bytes.len() as u64).sum());
                    pgmi_core::bundle::write(&self.raw, &self.params)
                }
            };
            let bundle =
                written.map_err(|e| Failure::config(format!("could not pack the project: {e}")))?;
            if bundle.len() as u64 > self.max_bundle_bytes {
                return Err(Failure::config(format!(
                    "the packed project is {} bytes, over the {}-byte bundle limit",
                    bundle.len(),
                    self.max_bundle_bytes
                ))
                .with_hint("move generated or vendored files out of the project (hidden directories and node_modules/ are skipped)"));
            }
            self.bundle = Some(bundle);
        }
        Ok(self.bundle.as_deref().unwrap_or_default())
    }
}

/// The largest value the extension's `pgmi_loader.max_file_size` accepts, in kB (1 GiB,
/// `pgmi-ext/src/guc.rs`; PostgreSQL cannot hold a larger text value anyway).
pub const SERVER_MAX_FILE_KB: u64 = pgmi_core::limits::CEILING_BYTES / 1024;

/// `PGMI_MAX_FILE_SIZE` as the server's setting: bytes rounded up to whole kB, so the
/// server never refuses a file the client accepted. Above the setting's maximum it is
/// clamped, and the server's own limit decides.
pub fn server_max_file_kb(max_file_bytes: u64) -> u32 {
    let kb = max_file_bytes.div_ceil(1024).clamp(1, SERVER_MAX_FILE_KB);
    u32::try_from(kb).unwrap_or(u32::MAX)
}

/// Walk and validate the project exactly as the extension will. The files are kept for
/// the bundle ([`Packed::bundle`]); `build` consumes its own copy. With `early_bundle` (an
/// extension session is possible), the bundle is written on a second thread meanwhile:
/// the two take about as long, and a portable session only wastes that thread's work.
pub fn pack(
    root: &Path,
    limits: &Limits,
    params: Vec<(String, String)>,
    early_bundle: bool,
) -> Result<Packed, Failure> {
    // One phase for the walk and the validation (checksums, metadata) that follows it.
    let phase = crate::progress::Phase::start(crate::progress::Shape::counting("Scanning"));
    let counters = phase.counters();
    let raw: Vec<RawFile> = project::walk_observed(root, limits, &|bytes| counters.file(bytes))
        .map_err(scan_failure)?;
    crate::timings::lap("scan");
    phase.relabel(crate::progress::Shape {
        label: "Checking",
        files: true,
        total_bytes: None,
        rate: false,
    });
    let (project, early) = std::thread::scope(|scope| {
        let early = early_bundle.then(|| scope.spawn(|| pgmi_core::bundle::write(&raw, &params)));
        let project = project::build_unhashed(raw.clone());
        (project, early.and_then(|h| h.join().ok()))
    });
    let project = project.map_err(scan_failure)?;
    crate::timings::lap("check");
    drop(phase);
    Ok(Packed {
        files: project.files_loaded,
        project,
        hashed: false,
        params,
        server_max_file_kb: None,
        raw,
        max_bundle_bytes: limits.max_bundle_bytes,
        bundle: None,
        early,
    })
}

/// A scan error: configuration (exit 10), or 1 for plain I/O failures. A metadata error's
/// text in the original pgmi embeds its hint; here the hint is printed once, as HINT, and an XML
/// error whose line is counted inside the comment also gets the file's line.
pub fn scan_failure(e: ProjectError) -> Failure {
    let exit = if e.kind() == ErrorKind::Io {
        Exit::General
    } else {
        Exit::InvalidConfig
    };
    let hint = e.hint();
    let mut failure = match &e {
        ProjectError::Metadata(m) => {
            let mut text = m.message.clone();
            if let Some(at) = m.hint.as_deref().and_then(|h| text.find(h)) {
                text.truncate(at);
            }
            let text = text.trim_end();
            let mut failure =
                Failure::new(exit, text.strip_suffix("Hint:").unwrap_or(text).trim_end());
            if let (Some(line), Some(file_line)) = (m.line, m.file_line) {
                if line != file_line {
                    failure.detail = Some(format!(
                        "line {line} of the comment holding the block is line {file_line} of {}",
                        m.path
                    ));
                }
            }
            failure
        }
        _ => Failure::new(exit, e.to_string()),
    };
    failure.hint = hint;
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_bom_nul_and_utf8() {
        assert_eq!(
            script_text(b"\xEF\xBB\xBFSELECT 1;".to_vec()).unwrap(),
            "SELECT 1;"
        );
        let nul = script_text(b"SELECT 1;\0".to_vec()).unwrap_err();
        assert_eq!(nul.exit, Exit::InvalidConfig);
        assert!(nul.message.contains("offset 9"));
        let bad = script_text(b"SELECT '\xff';".to_vec()).unwrap_err();
        assert!(bad.message.contains("offset 8"), "{}", bad.message);
    }

    #[test]
    fn max_file_size_from_env() {
        let env = |k: &str| (k == "PGMI_MAX_FILE_SIZE").then(|| "123".to_string());
        assert_eq!(limits(&env).unwrap().max_file_bytes, 123);
        let bad = |k: &str| (k == "PGMI_MAX_FILE_SIZE").then(|| "-1".to_string());
        assert!(limits(&bad).is_err());
        assert_eq!(limits(&|_| None).unwrap(), Limits::default());
    }

    #[test]
    fn server_file_limit_rounds_up_and_clamps() {
        assert_eq!(server_max_file_kb(1), 1);
        assert_eq!(server_max_file_kb(1024), 1);
        assert_eq!(server_max_file_kb(1025), 2);
        assert_eq!(server_max_file_kb(20_000_000), 19_532);
        assert_eq!(server_max_file_kb(10 * 1024 * 1024), 10 * 1024);
        assert_eq!(server_max_file_kb(1 << 30), 1 << 20);
        assert_eq!(server_max_file_kb(u64::MAX), 1 << 20);
    }
}
