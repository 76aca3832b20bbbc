//! Cloud IAM authentication as resolved from flags, the environment and pgmi.yaml: the
//! precedence of each input and every exit-10 case (README, "Cloud IAM authentication").

use std::collections::HashMap;

use super::tests::{args, resolve_full, yaml};
use super::*;
use crate::cloud::{Instance, Provider};
use crate::exit::Exit;

fn with_warnings(
    extra: &[&str],
    vars: &[(&str, &str)],
    yaml: Option<&Config>,
) -> Result<(ConnInfo, Vec<String>), Failure> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |k: &str| map.get(k).cloned();
    resolve_with(
        &args(extra).conn,
        &Inputs {
            env: &env,
            from_dotenv: &|_| false,
            yaml,
            socket_exists: &|_| false,
        },
    )
}

fn config_error(extra: &[&str], vars: &[(&str, &str)], yaml: Option<&Config>) -> String {
    let failure = resolve_full(extra, vars, yaml).unwrap_err();
    assert_eq!(failure.exit, Exit::InvalidConfig, "{}", failure.message);
    format!("{} | {}", failure.message, failure.hint.unwrap_or_default())
}

fn aws(info: &ConnInfo) -> (&str, &Source) {
    match &info.cloud.as_ref().expect("cloud auth on").provider {
        Provider::Aws(s) => (&s.region, &s.region_source),
        other => panic!("expected AWS, got {other:?}"),
    }
}

const USER: (&str, &str) = ("USER", "osuser");

#[test]
fn no_cloud_flags_means_password_authentication() {
    let info = resolve_full(&["-d", "app"], &[USER], None).unwrap();
    assert_eq!(info.cloud, None);
    assert_eq!(info.tls.mode, crate::tls::SslMode::Prefer);
}

#[test]
fn aws_region_precedence_flag_env_default_env_yaml() {
    let y = yaml("connection:\n  aws_region: yaml-1\n");
    let base = ["--aws", "-U", "iam", "-d", "app"];
    let info = resolve_full(&base, &[], Some(&y)).unwrap();
    assert_eq!(aws(&info), ("yaml-1", &Source::Yaml));
    let info = resolve_full(&base, &[("AWS_DEFAULT_REGION", "def-1")], Some(&y)).unwrap();
    assert_eq!(aws(&info).0, "def-1");
    let info = resolve_full(
        &base,
        &[("AWS_DEFAULT_REGION", "def-1"), ("AWS_REGION", "env-1")],
        Some(&y),
    )
    .unwrap();
    assert_eq!(aws(&info).0, "env-1");
    let mut with_flag = base.to_vec();
    with_flag.extend(["--aws-region", "flag-1"]);
    let info = resolve_full(&with_flag, &[("AWS_REGION", "env-1")], Some(&y)).unwrap();
    assert_eq!(aws(&info), ("flag-1", &Source::Flag("--aws-region")));
    assert_eq!(
        info.cloud.as_ref().unwrap().enabled_by,
        Source::Flag("--aws")
    );
}

#[test]
fn aws_needs_a_region_and_a_user_given_on_purpose() {
    let m = config_error(&["--aws", "-U", "iam", "-d", "app"], &[], None);
    assert!(
        m.contains("needs a region") && m.contains("--aws-region"),
        "{m}"
    );
    // $USER (or the operating-system user) is not the IAM database user.
    let m = config_error(&["--aws", "--aws-region", "r", "-d", "app"], &[USER], None);
    assert!(m.contains("needs the database user name"), "{m}");
    for (extra, vars) in [
        (vec!["-U", "iam"], vec![]),
        (vec![], vec![("PGUSER", "iam")]),
        (
            vec!["--connection", "postgres://iam@db.example.com/app"],
            vec![],
        ),
    ] {
        let mut argv = vec!["--aws", "--aws-region", "r", "-d", "app"];
        argv.extend(extra);
        let info = resolve_full(&argv, &vars, None).unwrap();
        assert_eq!(info.user, "iam");
    }
    let y = yaml("connection:\n  username: iam\n  auth_method: aws\n  aws_region: r\n");
    let info = resolve_full(&["-d", "app"], &[USER], Some(&y)).unwrap();
    assert_eq!(info.cloud.as_ref().unwrap().enabled_by, Source::Yaml);
}

#[test]
fn more_than_one_provider_is_refused_counting_every_provider_flag() {
    for extra in [
        ["--aws", "--azure"],
        ["--aws", "--azure-tenant-id"],
        ["--aws-region", "--google-instance"],
        ["--google", "--azure-client-id"],
    ] {
        let mut argv = vec!["-U", "u", "-d", "app"];
        for flag in extra {
            argv.push(flag);
            if !matches!(flag, "--aws" | "--azure" | "--google") {
                argv.push("p:r:i");
            }
        }
        let m = config_error(&argv, &[USER], None);
        assert!(m.contains("more than one cloud provider"), "{argv:?}: {m}");
    }
}

#[test]
fn a_flag_chooses_the_provider_over_pgmi_yaml() {
    let y = yaml("connection:\n  auth_method: azure\n");
    let info = resolve_full(
        &["--aws", "--aws-region", "r", "-U", "iam", "-d", "app"],
        &[],
        Some(&y),
    )
    .unwrap();
    assert_eq!(info.cloud.unwrap().provider.name(), "aws");
}

#[test]
fn detail_flags_alone_do_not_turn_cloud_auth_on_but_warn() {
    let (info, warnings) =
        with_warnings(&["--aws-region", "r", "-d", "app"], &[USER], None).unwrap();
    assert_eq!(info.cloud, None);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("--aws-region has no effect without --aws")),
        "{warnings:?}"
    );
}

#[test]
fn azure_inputs_flag_env_yaml() {
    let y =
        yaml("connection:\n  auth_method: azure\n  azure_tenant_id: yt\n  azure_client_id: yc\n");
    let info = resolve_full(&["-U", "me@example.com", "-d", "app"], &[], Some(&y)).unwrap();
    let Provider::Azure(s) = &info.cloud.as_ref().unwrap().provider else {
        panic!("expected Azure");
    };
    assert_eq!(s.tenant_id, Some(("yt".to_string(), Source::Yaml)));
    assert_eq!(s.client_id, Some(("yc".to_string(), Source::Yaml)));
    let info = resolve_full(
        &["--azure-tenant-id", "ft", "-U", "me", "-d", "app"],
        &[("AZURE_TENANT_ID", "et"), ("AZURE_CLIENT_ID", "ec")],
        Some(&y),
    )
    .unwrap();
    let Provider::Azure(s) = &info.cloud.as_ref().unwrap().provider else {
        panic!("expected Azure");
    };
    assert_eq!(
        s.tenant_id,
        Some(("ft".to_string(), Source::Flag("--azure-tenant-id")))
    );
    assert_eq!(s.client_id.as_ref().unwrap().0, "ec");
}

#[test]
fn google_needs_a_well_formed_instance_and_a_user() {
    let m = config_error(&["--google", "-U", "sa@p.iam", "-d", "app"], &[], None);
    assert!(m.contains("needs the instance"), "{m}");
    for bad in ["proj:inst", "a:b:c:d:e", "p::i", "p:r:i/x"] {
        let m = config_error(
            &["--google", "--google-instance", bad, "-U", "u", "-d", "app"],
            &[],
            None,
        );
        assert!(m.contains("invalid Cloud SQL instance"), "{bad}: {m}");
    }
    let m = config_error(
        &["--google", "--google-instance", "p:r:i", "-d", "app"],
        &[USER],
        None,
    );
    assert!(m.contains("needs the database user name"), "{m}");
    let y = yaml("connection:\n  auth_method: google\n  google_instance: example.com:proj:europe-west1:db1\n");
    let info = resolve_full(&["-U", "sa@proj.iam", "-d", "app"], &[], Some(&y)).unwrap();
    let Provider::Google(s) = &info.cloud.as_ref().unwrap().provider else {
        panic!("expected Google");
    };
    assert_eq!(
        s.instance,
        Instance {
            project: "example.com:proj".to_string(),
            region: "europe-west1".to_string(),
            name: "db1".to_string()
        }
    );
}

#[test]
fn cloud_auth_raises_an_unchosen_sslmode_to_require_and_keeps_a_chosen_one() {
    let base = ["--aws", "--aws-region", "r", "-U", "iam", "-d", "app"];
    let info = resolve_full(&base, &[], None).unwrap();
    assert_eq!(info.tls.mode, crate::tls::SslMode::Require);
    assert_eq!(info.sources.sslmode, Source::Cloud);
    let mut chosen = base.to_vec();
    chosen.extend(["--sslmode", "verify-full"]);
    let info = resolve_full(&chosen, &[], None).unwrap();
    assert_eq!(info.tls.mode, crate::tls::SslMode::VerifyFull);
    let info = resolve_full(&base, &[("PGSSLMODE", "disable")], None).unwrap();
    assert_eq!(info.tls.mode, crate::tls::SslMode::Disable);
}

#[test]
fn a_password_is_not_used_with_cloud_auth_and_never_shown() {
    let (info, warnings) = with_warnings(
        &[
            "--aws",
            "--aws-region",
            "eu-west-1",
            "-U",
            "iam",
            "-d",
            "app",
        ],
        &[("PGPASSWORD", "hunter2secret")],
        None,
    )
    .unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("PGPASSWORD is not used")),
        "{warnings:?}"
    );
    let line = info.describe();
    assert!(
        line.contains("password: aws token, fetched per connection (--aws)"),
        "{line}"
    );
    assert!(
        line.contains("aws_region=eu-west-1 (--aws-region)"),
        "{line}"
    );
    assert!(!line.contains("hunter2secret") && !format!("{info:?}").contains("hunter2secret"));
}
