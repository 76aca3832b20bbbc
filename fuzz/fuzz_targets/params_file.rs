//! Parameter parsing: `--params-file` contents, `--param` arguments and the final merge.
//!
//! Invariants checked (input: any bytes):
//! * `parse_params_file`: every key is non-empty, trimmed, holds no `=` and does not start
//!   with `#`; no key or value holds a newline; there are no more pairs than lines; a line
//!   error points at an existing line; rendering the pairs back as `key="value"` lines and
//!   parsing that gives the same pairs;
//! * `finalize`: output keys are valid identifiers, lower-case and unique, each value is the
//!   last one given for its key, in first-seen order; and no error message ever quotes a
//!   value (values are replaced by canaries to check this);
//! * `parse_cli_arg`: `key=value` splits at the first `=` and reassembles to the argument.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The allocator with the single-allocation cap.
use pgmi_fuzz as _;
use pgmi_core::params::{self, ParamError};

fuzz_target!(|data: &[u8]| {
    let parsed = params::parse_params_file(data);
    let lines = data.split(|&b| b == b'\n').count();
    match &parsed {
        Ok(pairs) => {
            assert!(pairs.len() <= lines);
            for (k, v) in pairs {
                assert!(!k.is_empty() && k.trim() == k && !k.contains('=') && !k.starts_with('#'));
                assert!(!k.contains('\n') && !v.contains('\n'));
            }
            let mut rendered = String::from("# rendered again\n");
            for (k, v) in pairs {
                rendered.push_str(&format!("{k}=\"{v}\"\r\n"));
            }
            assert_eq!(params::parse_params_file(rendered.as_bytes()).as_ref(), Ok(pairs));
            check_finalize(pairs.clone());
        }
        Err(
            ParamError::FileLineFormat { line }
            | ParamError::FileLineEmptyKey { line }
            | ParamError::FileLineNotUtf8 { line },
        ) => assert!(*line >= 1 && *line <= lines),
        Err(e) => panic!("parse_params_file returned a non-line error: {e:?}"),
    }
    if let Err(e) = &parsed {
        let _ = (e.to_string(), e.hint());
    }

    // The same bytes as one command-line argument.
    if let Ok(arg) = std::str::from_utf8(data) {
        match params::parse_cli_arg(arg) {
            Ok((k, v)) => {
                assert!(!k.is_empty() && !k.contains('='));
                assert_eq!(format!("{k}={v}"), arg);
            }
            Err(ParamError::MissingEquals { .. }) => assert!(!arg.contains('=')),
            Err(ParamError::EmptyKey) => assert!(arg.starts_with('=')),
            Err(e) => panic!("parse_cli_arg returned {e:?}"),
        }
        let _ = params::looks_secret(arg);
    }
    let _ = params::validate_value("k", data);
});

fn check_finalize(pairs: Vec<(String, String)>) {
    match params::finalize(pairs.clone()) {
        Ok(out) => {
            let mut seen = std::collections::HashSet::new();
            for (k, v) in &out {
                assert!(params::validate_key(k).is_ok());
                assert_eq!(*k, k.to_ascii_lowercase());
                assert!(seen.insert(k.clone()), "duplicate key after finalize");
                assert!(!v.contains('\0'));
                // Case-sensitive later-wins: the value is the last one for the original key.
                let last = pairs
                    .iter()
                    .rev()
                    .find(|(pk, _)| pk.to_ascii_lowercase() == *k)
                    .map(|(_, pv)| pv);
                assert_eq!(last, Some(v));
            }
            let distinct: std::collections::HashSet<&String> = pairs.iter().map(|(k, _)| k).collect();
            assert_eq!(out.len(), distinct.len());
        }
        Err(e) => {
            let _ = e.hint();
            // Values never appear in errors: swap each for a canary that keeps whether (and
            // where first) it holds a NUL, and look for canaries in the message.
            if pairs.iter().any(|(k, _)| k.contains("CANARY")) {
                return;
            }
            let masked: Vec<(String, String)> = pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    let canary = match v.find('\0') {
                        Some(_) => format!("CANARY{i}\0"),
                        None => format!("CANARY{i}"),
                    };
                    (k.clone(), canary)
                })
                .collect();
            let again = params::finalize(masked).expect_err("the same keys must fail again");
            let text = again.to_string();
            assert!(!text.contains("CANARY"), "an error message quotes a value: {text}");
        }
    }
}
