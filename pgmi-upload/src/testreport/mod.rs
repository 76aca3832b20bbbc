//! `--test-report FORMAT=FILE`: JUnit XML and TAP version 13 files for CI.
//!
//! Invariants:
//! * The flag values are checked before anything else (bad format → exit 10, no server
//!   contacted); the files are written only after the deploy ran, whatever its outcome,
//!   because a failed deploy is when CI needs them. A deploy that stopped before any test
//!   ran writes an empty report (an empty JUnit suite, TAP `1..0`).
//! * Rendering (`junit.rs`, `tap.rs`) is pure: rows in, text out, byte-for-byte
//!   deterministic (no timestamps or host names), so it is tested against golden files.
//! * A report file is replaced atomically: the text goes to a temporary file in the same
//!   directory, is flushed to disk, then renamed over the target. A reader never sees a
//!   half-written report, and a failed write leaves the previous report in place.

mod junit;
mod tap;

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::exit::{Exit, Failure};
use crate::testresults::TestStep;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Junit,
    Tap,
}

impl Format {
    fn label(self) -> &'static str {
        match self {
            Format::Junit => "JUnit",
            Format::Tap => "TAP",
        }
    }

    /// The report text for these rows.
    pub fn render(self, steps: &[TestStep]) -> String {
        match self {
            Format::Junit => junit::render(steps),
            Format::Tap => tap::render(steps),
        }
    }
}

/// One `--test-report` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSpec {
    pub format: Format,
    pub path: PathBuf,
}

/// Parse every `--test-report` value; any error is a configuration error (exit 10).
pub fn parse_specs(values: &[String]) -> Result<Vec<ReportSpec>, Failure> {
    let mut specs: Vec<ReportSpec> = Vec::with_capacity(values.len());
    for value in values {
        let spec = parse_spec(value)?;
        if specs.iter().any(|s| s.path == spec.path) {
            return Err(Failure::config(format!(
                "invalid --test-report {value:?}: {} is already the target of another --test-report",
                spec.path.display()
            ))
            .with_hint("give each report its own file"));
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn parse_spec(value: &str) -> Result<ReportSpec, Failure> {
    let hint = "use --test-report junit=<file> or --test-report tap=<file>";
    let Some((format, path)) = value.split_once('=') else {
        return Err(Failure::config(format!(
            "invalid --test-report {value:?}: expected FORMAT=FILE"
        ))
        .with_hint(hint));
    };
    let format = match format.trim().to_ascii_lowercase().as_str() {
        "junit" => Format::Junit,
        "tap" => Format::Tap,
        _ => {
            return Err(Failure::config(format!(
                "invalid --test-report {value:?}: unknown report format {format:?}"
            ))
            .with_hint(hint))
        }
    };
    if path.is_empty() {
        return Err(Failure::config(format!(
            "invalid --test-report {value:?}: the file name is empty"
        ))
        .with_hint(hint));
    }
    Ok(ReportSpec {
        format,
        path: PathBuf::from(path),
    })
}

/// Write every report. Each file is attempted even when an earlier one failed; the error
/// (exit 1) names every file that could not be written.
pub fn write_all(specs: &[ReportSpec], steps: &[TestStep]) -> Result<(), Failure> {
    let mut errors = Vec::new();
    for spec in specs {
        if let Err(e) = write_atomically(&spec.path, &spec.format.render(steps)) {
            errors.push(format!(
                "could not write the {} test report {}: {e}",
                spec.format.label(),
                spec.path.display()
            ));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Failure::new(Exit::General, errors.join("; "))
        .with_hint("check that the report's directory is writable and the path is not a directory"))
}

/// Replace `path` with `text` through a temporary file in the same directory (the rename is
/// atomic only within one file system). Missing parent directories are created, as
/// `pytest --junitxml` does, because CI configurations often point into a fresh `reports/`.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy())?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// `.<name>.<pid>.<n>.tmp`, created exclusively so an existing file (or a symlink planted
/// under a predictable name) is never written through.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    let pid = std::process::id();
    let mut last = None;
    // Ten names: collisions only come from leftovers of a crashed run with the same pid.
    for n in 0..10 {
        let tmp = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary file name")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testresults::fixtures::one_failure;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn specs_parse() {
        let specs =
            parse_specs(&strings(&["junit=out/r.xml", "TAP=r.tap", "junit=b=c.xml"])).unwrap();
        assert_eq!(specs[0].format, Format::Junit);
        assert_eq!(specs[0].path, PathBuf::from("out/r.xml"));
        assert_eq!(specs[1].format, Format::Tap);
        assert_eq!(specs[2].path, PathBuf::from("b=c.xml"));
        assert!(parse_specs(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_specs_are_configuration_errors() {
        for (bad, needle) in [
            ("xml=r.xml", "unknown report format \"xml\""),
            ("junit", "expected FORMAT=FILE"),
            ("tap=", "file name is empty"),
        ] {
            let f = parse_specs(&strings(&[bad])).unwrap_err();
            assert_eq!(f.exit, Exit::InvalidConfig, "{bad}");
            assert!(f.message.contains(needle), "{bad}: {}", f.message);
            assert!(f.hint.is_some());
        }
        let twice = parse_specs(&strings(&["junit=r", "tap=r"])).unwrap_err();
        assert!(twice.message.contains("already the target"));
    }

    #[test]
    fn writes_atomically_creating_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("reports/sub/junit.xml");
        let specs = vec![
            ReportSpec {
                format: Format::Junit,
                path: target.clone(),
            },
            ReportSpec {
                format: Format::Tap,
                path: dir.path().join("r.tap"),
            },
        ];
        write_all(&specs, &one_failure()).unwrap();
        let xml = fs::read_to_string(&target).unwrap();
        assert!(xml.starts_with("<?xml"));
        // Replaced, not appended; no temporary files left behind.
        write_all(&specs, &[]).unwrap();
        assert!(fs::read_to_string(&target).unwrap().contains("tests=\"0\""));
        assert_eq!(
            fs::read_to_string(dir.path().join("r.tap")).unwrap(),
            "TAP version 13\n1..0\n"
        );
        let leftovers: Vec<_> = fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("junit.xml")]);
    }

    #[test]
    fn unwritable_targets_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be replaced by a file.
        fs::create_dir(dir.path().join("taken")).unwrap();
        let specs = vec![
            ReportSpec {
                format: Format::Junit,
                path: dir.path().join("taken"),
            },
            ReportSpec {
                format: Format::Tap,
                path: dir.path().join("ok.tap"),
            },
        ];
        let f = write_all(&specs, &[]).unwrap_err();
        assert_eq!(f.exit, Exit::General);
        assert!(
            f.message
                .starts_with("could not write the JUnit test report"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("TAP"));
        assert!(
            dir.path().join("ok.tap").exists(),
            "the other report is still written"
        );
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
