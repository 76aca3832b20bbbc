use super::*;

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn cli_arg_splits_at_first_equals_without_trimming() {
    assert_eq!(parse_cli_arg("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    assert_eq!(parse_cli_arg("k=").unwrap(), ("k".into(), "".into()));
    assert_eq!(
        parse_cli_arg(" k = v ").unwrap(),
        (" k ".into(), " v ".into())
    );
    assert_eq!(
        parse_cli_arg("novalue"),
        Err(ParamError::MissingEquals {
            arg: "novalue".into()
        })
    );
    assert_eq!(parse_cli_arg("=secret"), Err(ParamError::EmptyKey));
    assert!(!ParamError::EmptyKey.to_string().contains("secret"));
    assert!(parse_cli_arg("x")
        .unwrap_err()
        .to_string()
        .contains("key=value"));
}

#[test]
fn params_file_rules() {
    let text = "\u{feff}# comment\n\n  env = production  \r\nQUOTED=\"a b\"\nsingle='x'\nmismatch=\"y'\nempty=\nurl=a=b#c\n  # indented comment\nexport X=1\ninner=\"'q'\"\nlast=1";
    let got = parse_params_file(text.as_bytes()).unwrap();
    assert_eq!(
        got,
        pairs(&[
            ("env", "production"),
            ("QUOTED", "a b"),
            ("single", "x"),
            ("mismatch", "\"y'"),
            ("empty", ""),
            ("url", "a=b#c"),
            ("export X", "1"),
            ("inner", "'q'"),
            ("last", "1"),
        ])
    );
    assert_eq!(parse_params_file(b"").unwrap(), vec![]);
    assert_eq!(
        parse_params_file(b"a=1\na=2\n").unwrap(),
        pairs(&[("a", "1"), ("a", "2")])
    );
    // A lone quote is not a pair.
    assert_eq!(parse_params_file(b"q=\"").unwrap(), pairs(&[("q", "\"")]));
}

#[test]
fn params_file_errors_carry_line_numbers() {
    assert_eq!(
        parse_params_file(b"a=1\n\nnoequals\n"),
        Err(ParamError::FileLineFormat { line: 3 })
    );
    assert_eq!(
        parse_params_file(b"# c\n = v\n"),
        Err(ParamError::FileLineEmptyKey { line: 2 })
    );
    assert_eq!(
        parse_params_file(b"a=1\r\nb=\xff\n"),
        Err(ParamError::FileLineNotUtf8 { line: 2 })
    );
    assert_eq!(
        ParamError::FileLineFormat { line: 3 }.to_string(),
        "line 3: invalid format, expected KEY=VALUE"
    );
}

#[test]
fn keys_must_be_simple_identifiers_of_at_most_63_bytes() {
    for bad in ["1abc", "bad-key", "", "a b", "é", "a.b", "abc\n"] {
        let err = validate_key(bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid parameter key '{bad}': must start with a letter or underscore and contain only letters, digits and underscores, 1-63 characters (PostgreSQL identifier limit)")
        );
    }
    assert!(validate_key(&"k".repeat(64)).is_err());
    assert!(validate_key(&"k".repeat(63)).is_ok());
    assert!(validate_key("_private").is_ok());
    assert!(validate_key("MyParam").is_ok());
    assert!(validate_key("_").is_ok());
}

#[test]
fn value_rules_name_the_key_never_the_value() {
    let err = validate_value("password", b"hunter\x002").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter value for 'password': contains NUL byte at offset 6"
    );
    let err = validate_value("password", b"hunter\xff").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter value for 'password': not valid UTF-8"
    );
    assert!(!err.to_string().contains("hunter"));
    assert!(validate_value("k", b"").is_ok());
}

#[test]
fn finalize_lowercases_keys() {
    let out = finalize(pairs(&[("MyParam", "value1")])).unwrap();
    assert_eq!(out, pairs(&[("myparam", "value1")]));
}

#[test]
fn finalize_keeps_values_exactly() {
    let values = [
        "a&b",
        "{\"k\": [1, 2]}",
        "line1\nline2\r\n",
        "日本語 ✓",
        "",
        "  padded  ",
    ];
    let input: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), v.to_string()))
        .collect();
    let out = finalize(input.clone()).unwrap();
    assert_eq!(out, input);
}

#[test]
fn finalize_later_wins_case_sensitively_in_first_position() {
    let out = finalize(pairs(&[("a", "yaml"), ("b", "1"), ("a", "cli")])).unwrap();
    assert_eq!(out, pairs(&[("a", "cli"), ("b", "1")]));
    // An invalid value that is overridden never reaches validation.
    let out = finalize(pairs(&[("a", "x\0y"), ("a", "ok")])).unwrap();
    assert_eq!(out, pairs(&[("a", "ok")]));
}

#[test]
fn finalize_rejects_case_collisions() {
    let err = finalize(pairs(&[("env", "dev"), ("ENV", "prod")])).unwrap_err();
    assert_eq!(
        err,
        ParamError::CaseCollision {
            first: "env".into(),
            second: "ENV".into(),
            lower: "env".into()
        }
    );
    assert!(!err.to_string().contains("prod"));
    assert!(err.hint().is_some());
}

#[test]
fn finalize_validates_keys_and_values() {
    assert!(matches!(
        finalize(pairs(&[("1abc", "v")])),
        Err(ParamError::InvalidKey { .. })
    ));
    assert!(matches!(
        finalize(pairs(&[("k", "a\0")])),
        Err(ParamError::ValueNul { offset: 1, .. })
    ));
    assert_eq!(finalize(vec![]).unwrap(), vec![]);
}

#[test]
fn looks_secret_matches_the_masked_words_anywhere_in_any_case() {
    for key in [
        "password",
        "db_password",
        "PGPASSWORD",
        "passwd",
        "admin_PassWd",
        "secret",
        "client_secret_id",
        "token",
        "API_TOKEN",
        "key",
        "api_key",
        "KEYRING",
        "credential",
        "credentials",
        "auth",
        "oauth_url",
        "Authorization",
        "private",
        "private_ssh",
    ] {
        assert!(looks_secret(key), "{key}");
    }
}

#[test]
fn looks_secret_rejects_plain_keys() {
    for key in [
        "",
        "env",
        "db_name",
        "pass",
        "user",
        "schema",
        "tok",
        "ke_y",
        "priv",
        "app_version",
    ] {
        assert!(!looks_secret(key), "{key}");
    }
    // Only ASCII folding: a non-ASCII look-alike is not a match.
    assert!(!looks_secret("\u{212A}ey"));
}
