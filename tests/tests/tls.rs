//! TLS with libpq's `sslmode` meanings, end to end: the real `pgmi-upload` binary against
//! throw-away clusters (`pgmi_tests::cluster`) configured with certificates generated here.
//!
//! Four servers, started once for the whole binary and stopped when it ends:
//! * `tls`: `ssl = on` with a certificate for `localhost` and 127.0.0.1 signed by our CA,
//!   which is also its `ssl_ca_file`; `certuser` and `certother` must log in with a client
//!   certificate (`hostssl … cert`), `sslonly` only over TLS, `clearonly` only without;
//!   everyone else may use either;
//! * `plain`: `ssl = off`;
//! * `wrong_name`: a valid certificate, but for `db.invalid`;
//! * `expired`: a certificate for `localhost` that expired yesterday.
//!
//! Every deploy goes into a database of its own that `pgmi-upload` creates (so its
//! maintenance connection is exercised too), and `deploy.sql` reports whether its own
//! connection is encrypted, from `pg_stat_ssl`, so each success says which it was.
//! `HOME` points at an empty directory unless a test is about the default files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use pgmi_tests::cluster::Cluster;

/// The passphrase of the encrypted client keys.
const PASSPHRASE: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------
// Certificates

struct Issued {
    cert: X509,
    key: PKey<Private>,
}

impl Issued {
    fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("certificate PEM")
    }

    fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().expect("key PEM")
    }
}

/// What a certificate is for.
enum Role<'a> {
    Ca,
    Server {
        dns: &'a [&'a str],
        ips: &'a [&'a str],
    },
    Client,
}

/// P-256 keys: much cheaper to generate than RSA, and accepted by every TLS version.
fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey")
}

/// A certificate for `cn`, valid from `from` to `until` (seconds relative to now), signed
/// by `issuer` (self-signed when `None`).
fn issue(cn: &str, role: Role<'_>, issuer: Option<&Issued>, from: i64, until: i64) -> Issued {
    let key = new_key();
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("CN");
    let name = name.build();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;

    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&*name, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(now + from).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(now + until).expect("time"))
        .expect("not after");
    match role {
        Role::Ca => {
            let bc = BasicConstraints::new().critical().ca().build().expect("bc");
            b.append_extension(bc).expect("bc");
            let ku = KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku");
            b.append_extension(ku).expect("ku");
        }
        Role::Server { dns, ips } => {
            let mut san = SubjectAlternativeName::new();
            for d in dns {
                san.dns(d);
            }
            for ip in ips {
                san.ip(ip);
            }
            let san = san
                .build(&b.x509v3_context(issuer.map(|i| &*i.cert), None))
                .expect("san");
            b.append_extension(san).expect("san");
            let eku = ExtendedKeyUsage::new().server_auth().build().expect("eku");
            b.append_extension(eku).expect("eku");
        }
        Role::Client => {
            let eku = ExtendedKeyUsage::new().client_auth().build().expect("eku");
            b.append_extension(eku).expect("eku");
        }
    }
    let skid = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.map(|i| &*i.cert), None))
        .expect("skid");
    b.append_extension(skid).expect("skid");
    if let Some(issuer) = issuer {
        let akid = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&issuer.cert), None))
            .expect("akid");
        b.append_extension(akid).expect("akid");
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).expect("sign");
    Issued {
        cert: b.build(),
        key,
    }
}

const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------------------
// The servers and the client-side files

struct Lab {
    tls: Cluster,
    plain: Cluster,
    wrong_name: Cluster,
    expired: Cluster,
    files: ClientFiles,
}

/// Paths of the client-side files, all in the `tls` cluster's scratch directory.
struct ClientFiles {
    ca: String,
    rogue_ca: String,
    client_cert: String,
    client_key: String,
    /// The same key, encrypted as PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`).
    client_key_pkcs8: String,
    /// The same key in the legacy form (`Proc-Type: 4,ENCRYPTED`).
    client_key_legacy: String,
    /// A certificate for `certuser` signed by the rogue CA, and its key.
    rogue_client_cert: String,
    rogue_client_key: String,
    not_pem: String,
    /// A HOME without `.postgresql/`.
    empty_home: String,
    project: String,
    scratch: PathBuf,
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(build_lab)
}

fn build_lab() -> Lab {
    let ca = issue("pgmi test CA", Role::Ca, None, -DAY, 30 * DAY);
    let rogue_ca = issue("pgmi rogue CA", Role::Ca, None, -DAY, 30 * DAY);
    let local = Role::Server {
        dns: &["localhost"],
        ips: &["127.0.0.1"],
    };
    let good = issue("localhost", local, Some(&ca), -DAY, 30 * DAY);
    let other = Role::Server {
        dns: &["db.invalid"],
        ips: &[],
    };
    let wrong_name = issue("db.invalid", other, Some(&ca), -DAY, 30 * DAY);
    let local = Role::Server {
        dns: &["localhost"],
        ips: &["127.0.0.1"],
    };
    let expired = issue("localhost", local, Some(&ca), -30 * DAY, -DAY);
    let client = issue("certuser", Role::Client, Some(&ca), -DAY, 30 * DAY);
    let rogue_client = issue("certuser", Role::Client, Some(&rogue_ca), -DAY, 30 * DAY);

    let server = |issued: &Issued, ssl: bool| {
        let mut b = Cluster::builder()
            .setting("log_connections", "on")
            .hba("hostssl all certuser 127.0.0.1/32 cert")
            .hba("host    all certuser 127.0.0.1/32 reject")
            .hba("hostssl all certother 127.0.0.1/32 cert")
            .hba("host    all certother 127.0.0.1/32 reject")
            .hba("hostssl all sslonly 127.0.0.1/32 trust")
            .hba("host    all sslonly 127.0.0.1/32 reject")
            .hba("hostssl all clearonly 127.0.0.1/32 reject")
            .hba("hostssl all scramuser 127.0.0.1/32 scram-sha-256")
            .hba("host    all scramuser 127.0.0.1/32 reject")
            .hba("host    all all 127.0.0.1/32 trust");
        if ssl {
            b = b
                .setting("ssl", "on")
                .setting("ssl_cert_file", "server.crt")
                .setting("ssl_key_file", "server.key")
                .setting("ssl_ca_file", "ca.crt")
                .file("server.crt", issued.cert_pem())
                .file("server.key", issued.key_pem())
                .file("ca.crt", ca.cert_pem());
        } else {
            b = b.setting("ssl", "off");
        }
        let cluster = b.start();
        cluster.execute(
            "CREATE ROLE app LOGIN CREATEDB; CREATE ROLE certuser LOGIN CREATEDB; \
             CREATE ROLE certother LOGIN CREATEDB; CREATE ROLE sslonly LOGIN CREATEDB; \
             CREATE ROLE clearonly LOGIN CREATEDB; \
             SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE scramuser LOGIN CREATEDB PASSWORD 'scram-pass-31';",
        );
        cluster
    };
    // initdb dominates; the four run side by side.
    let (tls, plain, wrong, old) = std::thread::scope(|s| {
        let tls = s.spawn(|| server(&good, true));
        let plain = s.spawn(|| server(&good, false));
        let wrong = s.spawn(|| server(&wrong_name, true));
        let old = s.spawn(|| server(&expired, true));
        (
            tls.join().expect("tls cluster"),
            plain.join().expect("plain cluster"),
            wrong.join().expect("wrong-name cluster"),
            old.join().expect("expired cluster"),
        )
    });

    let scratch = tls.scratch().to_path_buf();
    let write = |name: &str, bytes: &[u8]| -> String {
        let path = scratch.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        set_mode(&path, 0o600);
        path.to_str().expect("utf-8").to_string()
    };
    let ec = client.key.ec_key().expect("EC key");
    let files = ClientFiles {
        ca: write("ca.crt", &ca.cert_pem()),
        rogue_ca: write("rogue-ca.crt", &rogue_ca.cert_pem()),
        client_cert: write("client.crt", &client.cert_pem()),
        client_key: write("client.key", &client.key_pem()),
        client_key_pkcs8: write(
            "client-pkcs8.key",
            &client
                .key
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
                .expect("encrypted PKCS#8"),
        ),
        client_key_legacy: write(
            "client-legacy.key",
            &ec.private_key_to_pem_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
                .expect("encrypted legacy PEM"),
        ),
        rogue_client_cert: write("rogue-client.crt", &rogue_client.cert_pem()),
        rogue_client_key: write("rogue-client.key", &rogue_client.key_pem()),
        not_pem: write("not-a-certificate.crt", b"hello\n"),
        empty_home: {
            let home = scratch.join("home-empty");
            std::fs::create_dir(&home).expect("mkdir");
            home.to_str().expect("utf-8").to_string()
        },
        project: {
            let dir = scratch.join("project");
            std::fs::create_dir(&dir).expect("mkdir");
            std::fs::write(dir.join("deploy.sql"), DEPLOY_SQL).expect("deploy.sql");
            dir.to_str().expect("utf-8").to_string()
        },
        scratch: scratch.clone(),
    };
    Lab {
        tls,
        plain,
        wrong_name: wrong,
        expired: old,
        files,
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Says whether the deploy's own connection is encrypted.
const DEPLOY_SQL: &str = "DO $$
BEGIN
    RAISE NOTICE 'pgmi-tls=%',
        (SELECT ssl::text FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid());
END
$$;
";

// ---------------------------------------------------------------------------------------
// Running pgmi-upload

struct Outcome {
    code: i32,
    stderr: String,
    database: String,
}

impl Outcome {
    /// What deploy.sql reported: `Some(true)` over TLS, `Some(false)` in clear.
    fn encrypted(&self) -> Option<bool> {
        self.stderr.lines().find_map(|l| match l.trim() {
            "pgmi-tls=true" => Some(true),
            "pgmi-tls=false" => Some(false),
            _ => None,
        })
    }

    #[track_caller]
    fn succeeded(&self, encrypted: bool) -> &Outcome {
        assert_eq!(self.code, 0, "deploy failed:\n{}", self.stderr);
        assert_eq!(
            self.encrypted(),
            Some(encrypted),
            "expected an {} connection:\n{}",
            if encrypted {
                "encrypted"
            } else {
                "unencrypted"
            },
            self.stderr
        );
        self
    }

    /// Exit `code`, every needle in stderr, and deploy.sql never ran.
    #[track_caller]
    fn failed(&self, code: i32, needles: &[&str]) -> &Outcome {
        assert_eq!(self.code, code, "unexpected exit code:\n{}", self.stderr);
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "expected {needle:?} in:\n{}",
                self.stderr
            );
        }
        assert_eq!(self.encrypted(), None, "deploy.sql ran:\n{}", self.stderr);
        self
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn database_name(label: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("tls_{label}_{n}")
}

/// `pgmi-upload` with a clean environment: only HOME (empty unless `env` says otherwise),
/// NO_COLOR and what `env` adds.
fn pgmi_upload(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(pgmi_tests::binary());
    cmd.args(args)
        .env_clear()
        .env("HOME", &lab().files.empty_home)
        .env("NO_COLOR", "1")
        .env("PGMI_NON_INTERACTIVE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pgmi-upload");
    let run = pgmi_tests::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // The key passphrase (PGSSLPASSWORD) never appears in any output.
    pgmi_tests::assert_no_secret_in(&run, args, env);
    (run.code, run.stderr)
}

/// Deploy the probe project into a new database on `cluster` at `host` as `user`.
fn deploy(
    cluster: &Cluster,
    host: &str,
    user: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    let database = database_name(user);
    let port = cluster.port().to_string();
    let mut args = vec![
        "deploy",
        &lab().files.project,
        "--session",
        "portable",
        "-d",
        &database,
        "-h",
        host,
        "-p",
        &port,
        "-U",
        user,
    ];
    args.extend_from_slice(extra);
    let (code, stderr) = pgmi_upload(&args, env);
    Outcome {
        code,
        stderr,
        database,
    }
}

fn database_exists(cluster: &Cluster, name: &str) -> bool {
    cluster
        .connect("postgres")
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&name],
        )
        .expect("pg_database")
        .is_some()
}

// ---------------------------------------------------------------------------------------
// The six modes

#[test]
fn every_mode_against_a_server_with_tls() {
    let lab = lab();
    let ca = lab.files.ca.as_str();
    // allow prefers clear text, prefer prefers TLS, require needs no root certificate.
    let cases: &[(&str, &[&str], bool)] = &[
        ("disable", &[], false),
        ("allow", &[], false),
        ("prefer", &[], true),
        ("require", &[], true),
        ("verify-ca", &["--sslrootcert", ca], true),
        ("verify-full", &["--sslrootcert", ca], true),
    ];
    for (mode, extra, encrypted) in cases {
        let mut args = vec!["--sslmode", *mode];
        args.extend_from_slice(extra);
        deploy(&lab.tls, "localhost", "app", &args, &[]).succeeded(*encrypted);
    }
    // The default mode is prefer.
    deploy(&lab.tls, "localhost", "app", &[], &[]).succeeded(true);
    // verify-full against an IP address matches the certificate's IP entry.
    deploy(
        &lab.tls,
        "127.0.0.1",
        "app",
        &["--sslmode", "verify-full", "--sslrootcert", ca],
        &[],
    )
    .succeeded(true);
}

#[test]
fn every_mode_against_a_server_without_tls() {
    let lab = lab();
    let ca = lab.files.ca.as_str();
    for mode in ["disable", "allow", "prefer"] {
        deploy(&lab.plain, "localhost", "app", &["--sslmode", mode], &[]).succeeded(false);
    }
    for mode in ["require", "verify-ca", "verify-full"] {
        let run = deploy(
            &lab.plain,
            "localhost",
            "app",
            &["--sslmode", mode, "--sslrootcert", ca],
            &[],
        );
        run.failed(
            11,
            &[
                "server does not support TLS",
                "HINT: the server has TLS turned off (ssl = off",
                &format!("sslmode {mode} needs it"),
                "--sslmode prefer, allow or disable",
            ],
        );
        assert!(!database_exists(&lab.plain, &run.database));
    }
}

#[test]
fn allow_retries_with_tls_when_the_server_refuses_clear_text() {
    let lab = lab();
    deploy(
        &lab.tls,
        "localhost",
        "sslonly",
        &["--sslmode", "allow"],
        &[],
    )
    .succeeded(true);
    deploy(
        &lab.tls,
        "localhost",
        "sslonly",
        &["--sslmode", "prefer"],
        &[],
    )
    .succeeded(true);
    deploy(
        &lab.tls,
        "localhost",
        "sslonly",
        &["--sslmode", "disable"],
        &[],
    )
    .failed(
        11,
        &[
            "pg_hba.conf rejects connection",
            refused_in(false),
            "HINT: the server accepts this connection only over TLS",
        ],
    );
}

/// How the server's pg_hba.conf refusal names the connection, which changed in 14.
fn refused_in(tls: bool) -> &'static str {
    match (pgmi_tests::cluster::server_major() >= 14, tls) {
        (true, false) => "no encryption",
        (true, true) => "SSL encryption",
        (false, false) => ", SSL off",
        (false, true) => ", SSL on",
    }
}

#[test]
fn prefer_retries_in_clear_text_when_refused_over_tls() {
    let lab = lab();
    // libpq: an error from the server over TLS is followed by one attempt in clear.
    deploy(&lab.tls, "localhost", "clearonly", &[], &[]).succeeded(false);
    deploy(
        &lab.tls,
        "localhost",
        "clearonly",
        &["--sslmode", "allow"],
        &[],
    )
    .succeeded(false);
    deploy(&lab.tls, "localhost", "clearonly", &["--sslmode", "require"], &[]).failed(
        11,
        &[
            "pg_hba.conf rejects connection",
            refused_in(true),
            "HINT: the server accepts this connection only without TLS (pg_hba.conf), and sslmode require insists on TLS",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Verification

// Password authentication over TLS binds itself to the server's certificate
// (SCRAM-SHA-256-PLUS with tls-server-end-point), as managed servers offer it: the
// connector's binding data are what the server computes. `channel_binding=require` makes
// the client refuse plain SCRAM, so a connector without (or with wrong) binding data fails.
#[test]
fn scram_over_tls_binds_the_channel() {
    let lab = lab();
    let tls = pgmi_upload::tls::prepare(
        &pgmi_upload::tls::TlsSettings {
            mode: pgmi_upload::tls::SslMode::Require,
            ..Default::default()
        },
        false,
    )
    .expect("TLS set-up");
    let mut config = postgres::Config::new();
    config
        .host("localhost")
        .port(lab.tls.port())
        .user("scramuser")
        .password("scram-pass-31")
        .dbname("postgres")
        .channel_binding(postgres::config::ChannelBinding::Require);
    let mut client = pgmi_upload::tls::connect(&config, &tls, false)
        .unwrap_or_else(|e| panic!("SCRAM-SHA-256-PLUS over TLS: {e}"));
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl);
    // The program itself, with the password from the environment.
    deploy(
        &lab.tls,
        "localhost",
        "scramuser",
        &["--sslmode", "require"],
        &[("PGPASSWORD", "scram-pass-31")],
    )
    .succeeded(true);
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let lab = lab();
    let ca = lab.files.ca.as_str();
    let full = ["--sslmode", "verify-full", "--sslrootcert", ca];
    deploy(&lab.wrong_name, "localhost", "app", &full, &[]).failed(
        11,
        &[
            "HINT: the server's certificate is for DNS:db.invalid, not for \"localhost\"",
            "--sslmode verify-ca, which checks the CA but not the host name",
        ],
    );
    deploy(&lab.wrong_name, "127.0.0.1", "app", &full, &[])
        .failed(11, &["is for DNS:db.invalid, not for \"127.0.0.1\""]);
    deploy(
        &lab.wrong_name,
        "localhost",
        "app",
        &["--sslmode", "verify-ca", "--sslrootcert", ca],
        &[],
    )
    .succeeded(true);
}

#[test]
fn an_untrusted_ca_fails_verification_but_require_alone_does_not_verify() {
    let lab = lab();
    let rogue = lab.files.rogue_ca.as_str();
    for mode in ["verify-ca", "verify-full"] {
        deploy(
            &lab.tls,
            "localhost",
            "app",
            &["--sslmode", mode, "--sslrootcert", rogue],
            &[],
        )
        .failed(
            11,
            &[
                "certificate verify failed",
                "HINT: the server's certificate chain ends at the CA CN=pgmi test CA, which is not in the root certificate file sslrootcert",
                "rogue-ca.crt",
                "--sslrootcert",
            ],
        );
    }
    // require without a root certificate: encrypted, nothing verified.
    deploy(&lab.tls, "localhost", "app", &["--sslmode", "require"], &[]).succeeded(true);
    // libpq's rule: with a root certificate, require verifies the chain like verify-ca.
    deploy(
        &lab.tls,
        "localhost",
        "app",
        &["--sslmode", "require", "--sslrootcert", rogue],
        &[],
    )
    .failed(
        11,
        &[
            "which is not in the root certificate file sslrootcert",
            "sslmode require verifies the chain because sslrootcert",
        ],
    );
    // prefer: the failed handshake is followed by a clear-text attempt, as in libpq.
    deploy(
        &lab.tls,
        "localhost",
        "app",
        &["--sslmode", "prefer", "--sslrootcert", rogue],
        &[],
    )
    .succeeded(false);
}

#[test]
fn an_expired_server_certificate_is_named_as_such() {
    let lab = lab();
    let ca = lab.files.ca.as_str();
    let year = Asn1Time::days_from_now(0).expect("now").to_string();
    let year = year.split_whitespace().nth(3).expect("year").to_string();
    for mode in ["verify-ca", "verify-full"] {
        deploy(
            &lab.expired,
            "localhost",
            "app",
            &["--sslmode", mode, "--sslrootcert", ca],
            &[],
        )
        .failed(
            11,
            &[
                "certificate verify failed",
                "HINT: the server's certificate (CN=localhost) expired on ",
                &year,
                "renewed certificate",
            ],
        );
    }
    // Without verification the date is not looked at.
    deploy(
        &lab.expired,
        "localhost",
        "app",
        &["--sslmode", "require"],
        &[],
    )
    .succeeded(true);
}

// ---------------------------------------------------------------------------------------
// Client certificates

fn verified(ca: &str) -> Vec<&str> {
    vec!["--sslmode", "verify-full", "--sslrootcert", ca]
}

#[test]
fn a_client_certificate_is_sent_when_the_server_asks_for_one() {
    let lab = lab();
    let f = &lab.files;
    for extra in [verified(&f.ca), vec![]] {
        deploy(&lab.tls, "localhost", "certuser", &extra, &[]).failed(
            11,
            &[
                "connection requires a valid client certificate",
                "HINT: the server requires a client certificate for this user: give it with --sslcert and --sslkey",
            ],
        );
    }
    let mut args = verified(&f.ca);
    args.extend(["--sslcert", &f.client_cert, "--sslkey", &f.client_key]);
    deploy(&lab.tls, "localhost", "certuser", &args, &[]).succeeded(true);
    // The certificate authenticates only the role named in its CN.
    deploy(&lab.tls, "localhost", "certother", &args, &[]).failed(
        11,
        &[
            "certificate authentication failed for user \"certother\"",
            "HINT: the client certificate's common name (this one has CN \"certuser\") must equal the user name",
        ],
    );
}

#[test]
fn encrypted_client_keys_are_decrypted_with_the_passphrase() {
    let lab = lab();
    let f = &lab.files;
    for key in [&f.client_key_pkcs8, &f.client_key_legacy] {
        let mut args = verified(&f.ca);
        args.extend(["--sslcert", &f.client_cert, "--sslkey", key]);
        deploy(
            &lab.tls,
            "localhost",
            "certuser",
            &args,
            &[("PGSSLPASSWORD", PASSPHRASE)],
        )
        .succeeded(true);

        let wrong = "not-the-passphrase-42";
        let run = deploy(
            &lab.tls,
            "localhost",
            "certuser",
            &args,
            &[("PGSSLPASSWORD", wrong)],
        );
        run.failed(
            10,
            &[
                "could not decrypt private key sslkey",
                "wrong passphrase",
                "PGSSLPASSWORD",
            ],
        );
        assert!(
            !run.stderr.contains(wrong),
            "passphrase printed:\n{}",
            run.stderr
        );

        deploy(&lab.tls, "localhost", "certuser", &args, &[]).failed(
            10,
            &[
                "is encrypted and no passphrase was given",
                "HINT: the passphrase comes from PGSSLPASSWORD or the sslpassword parameter",
            ],
        );
    }
}

#[test]
fn a_client_certificate_from_an_unknown_ca_is_rejected_by_the_server() {
    let lab = lab();
    let f = &lab.files;
    let mut args = verified(&f.ca);
    args.extend([
        "--sslcert",
        &f.rogue_client_cert,
        "--sslkey",
        &f.rogue_client_key,
    ]);
    // The server's "unknown ca" alert, or (TLS 1.3, when the client was already writing)
    // only the reset of the connection the server closed: both name the cause.
    let run = deploy(&lab.tls, "localhost", "certuser", &args, &[]);
    let alert = run.stderr.contains("unknown ca");
    let needles: &[&str] = if alert {
        &[
            "HINT: the server rejected the client certificate sslcert",
            "not signed by a CA in the server's ssl_ca_file",
        ]
    } else {
        &[
            "Connection reset by peer",
            "HINT: the server closed the connection right after the TLS handshake",
            "is sslcert",
            "signed by a CA in the server's ssl_ca_file?",
        ]
    };
    run.failed(11, needles);
}

#[test]
fn a_key_readable_by_others_is_refused() {
    let lab = lab();
    let f = &lab.files;
    let open_key = f.scratch.join("open.key");
    std::fs::copy(&f.client_key, &open_key).expect("copy");
    set_mode(&open_key, 0o644);
    let open_key = open_key.to_str().expect("utf-8");
    let mut args = verified(&f.ca);
    args.extend(["--sslcert", &f.client_cert, "--sslkey", open_key]);
    let run = deploy(&lab.tls, "localhost", "certuser", &args, &[]);
    run.failed(
        10,
        &[
            &format!("private key sslkey \"{open_key}\" has group or world access (mode 0644)"),
            &format!("HINT: restrict it: chmod 0600 \"{open_key}\""),
        ],
    );
    assert!(!database_exists(&lab.tls, &run.database));
}

// ---------------------------------------------------------------------------------------
// Where the settings come from

#[test]
fn the_connection_uri_and_the_environment_carry_the_settings() {
    let lab = lab();
    let f = &lab.files;
    let uri = |root: &str| {
        format!(
            "postgresql://app@localhost:{}/{}?sslmode=verify-full&sslrootcert={root}",
            lab.tls.port(),
            database_name("uri")
        )
    };
    let project = f.project.as_str();
    let (code, stderr) = pgmi_upload(
        &[
            "deploy",
            project,
            "--session",
            "portable",
            "--connection",
            &uri(&f.ca),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("pgmi-tls=true"), "{stderr}");
    let (code, stderr) = pgmi_upload(
        &[
            "deploy",
            project,
            "--session",
            "portable",
            "--connection",
            &uri(&f.rogue_ca),
        ],
        &[],
    );
    assert_eq!(code, 11, "{stderr}");
    assert!(stderr.contains("rogue-ca.crt"), "{stderr}");

    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", f.ca.as_str()),
    ];
    deploy(&lab.tls, "localhost", "app", &[], &env).succeeded(true);
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &f.rogue_ca)];
    deploy(&lab.tls, "localhost", "app", &[], &env).failed(11, &["rogue-ca.crt"]);
    deploy(
        &lab.plain,
        "localhost",
        "app",
        &[],
        &[("PGSSLMODE", "require")],
    )
    .failed(11, &["server does not support TLS"]);
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", f.ca.as_str()),
        ("PGSSLCERT", f.client_cert.as_str()),
        ("PGSSLKEY", f.client_key_pkcs8.as_str()),
        ("PGSSLPASSWORD", PASSPHRASE),
    ];
    deploy(&lab.tls, "localhost", "certuser", &[], &env).succeeded(true);
}

/// A HOME whose `.postgresql/` holds `files` (name, source path).
fn home_with(label: &str, files: &[(&str, &str)]) -> String {
    let home = lab().files.scratch.join(format!("home-{label}"));
    let dir = home.join(".postgresql");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, source) in files {
        std::fs::copy(source, dir.join(name)).expect("copy");
        set_mode(&dir.join(name), 0o600);
    }
    home.to_str().expect("utf-8").to_string()
}

#[test]
fn libpq_default_files_under_home_are_used() {
    let lab = lab();
    let f = &lab.files;
    let home = home_with("root", &[("root.crt", &f.ca)]);
    deploy(
        &lab.tls,
        "localhost",
        "app",
        &["--sslmode", "verify-full"],
        &[("HOME", &home)],
    )
    .succeeded(true);

    // A default root certificate makes require verify, as in libpq.
    let home = home_with("rogue", &[("root.crt", &f.rogue_ca)]);
    deploy(
        &lab.tls,
        "localhost",
        "app",
        &["--sslmode", "require"],
        &[("HOME", &home)],
    )
    .failed(
        11,
        &[
            "which is not in the root certificate file",
            "(default sslrootcert)",
            "sslmode require verifies the chain because",
        ],
    );

    let home = home_with(
        "client",
        &[
            ("root.crt", &f.ca),
            ("postgresql.crt", &f.client_cert),
            ("postgresql.key", &f.client_key),
        ],
    );
    deploy(
        &lab.tls,
        "localhost",
        "certuser",
        &["--sslmode", "verify-full"],
        &[("HOME", &home)],
    )
    .succeeded(true);
}

#[test]
fn missing_or_malformed_files_fail_before_connecting() {
    let lab = lab();
    let f = &lab.files;
    for mode in ["verify-ca", "verify-full"] {
        let run = deploy(&lab.tls, "localhost", "app", &["--sslmode", mode], &[]);
        run.failed(
            10,
            &[
                &format!("sslmode {mode} verifies the server's certificate, but no root certificate was given"),
                &format!("{}/.postgresql/root.crt\" does not exist", f.empty_home),
                "HINT: give the CA certificate that signed the server's certificate with --sslrootcert",
                "sslrootcert=system",
            ],
        );
        assert!(!database_exists(&lab.tls, &run.database));
    }
    let missing = f.scratch.join("missing.crt");
    let missing = missing.to_str().expect("utf-8");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--sslmode", "verify-ca", "--sslrootcert", missing],
            &[
                &format!("sslrootcert \"{missing}\": No such file or directory"),
                "--sslrootcert",
            ],
        ),
        (
            &["--sslmode", "require", "--sslrootcert", &f.not_pem],
            &["not-a-certificate.crt\": no certificate in it"],
        ),
        (
            &[
                "--sslmode",
                "require",
                "--sslcert",
                missing,
                "--sslkey",
                &f.client_key,
            ],
            &[&format!("sslcert \"{missing}\": No such file or directory")],
        ),
        (
            &[
                "--sslmode",
                "require",
                "--sslcert",
                &f.client_cert,
                "--sslkey",
                missing,
            ],
            &[&format!("sslkey \"{missing}\": No such file or directory")],
        ),
        (
            // The rogue client's key does not belong to the client certificate.
            &[
                "--sslmode",
                "require",
                "--sslcert",
                &f.client_cert,
                "--sslkey",
                &f.rogue_client_key,
            ],
            &["does not match the private key"],
        ),
        (
            &["--sslmode", "require", "--sslkey", &f.client_key],
            &["given without a client certificate", "--sslcert"],
        ),
    ];
    // Through a Unix socket no TLS context is built (tls::prepare), but the same files are
    // still read and checked, with the same errors.
    let socket = lab.tls.socket_dir().to_str().expect("utf-8");
    for (args, needles) in cases {
        for host in ["localhost", socket] {
            let run = deploy(&lab.tls, host, "app", args, &[]);
            run.failed(10, needles);
            assert!(!database_exists(&lab.tls, &run.database));
        }
    }
}

#[test]
fn the_system_trust_store_is_for_verify_full_only() {
    let lab = lab();
    let f = &lab.files;
    let system = ["--sslmode", "verify-full", "--sslrootcert", "system"];
    // OpenSSL's default paths honour SSL_CERT_FILE: point it at our CA.
    deploy(
        &lab.tls,
        "localhost",
        "app",
        &system,
        &[("SSL_CERT_FILE", &f.ca)],
    )
    .succeeded(true);
    // The real system store does not know our CA.
    deploy(
        &lab.tls,
        "localhost",
        "app",
        &system,
        &[
            ("SSL_CERT_FILE", &f.rogue_ca),
            ("SSL_CERT_DIR", &f.empty_home),
        ],
    )
    .failed(11, &["which is not in the system's trusted roots"]);
    for mode in ["require", "verify-ca"] {
        deploy(
            &lab.tls,
            "localhost",
            "app",
            &["--sslmode", mode, "--sslrootcert", "system"],
            &[],
        )
        .failed(
            10,
            &[
                &format!("weak sslmode \"{mode}\" may not be used with sslrootcert=system"),
                "--sslmode verify-full",
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------
// Every connection

#[test]
fn a_unix_socket_never_uses_tls() {
    let lab = lab();
    let socket = lab.tls.socket_dir().to_str().expect("utf-8");
    deploy(
        &lab.tls,
        socket,
        "app",
        &["--sslmode", "verify-full", "--sslrootcert", &lab.files.ca],
        &[],
    )
    .succeeded(false);
}

#[test]
fn the_maintenance_connection_uses_tls_too() {
    let lab = lab();
    let app = format!("pgmi_tls_maint_{}", std::process::id());
    let run = deploy(
        &lab.tls,
        "localhost",
        "app",
        &["--sslmode", "verify-full", "--sslrootcert", &lab.files.ca],
        &[("PGAPPNAME", &app)],
    );
    run.succeeded(true);
    assert!(
        run.stderr.contains("does not exist; creating"),
        "{}",
        run.stderr
    );
    // log_connections: one line per authorised connection, with its TLS parameters.
    let log = lab.tls.log();
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized") && l.contains(&app))
        .collect();
    assert!(
        ours.iter().any(|l| l.contains("database=postgres")),
        "no maintenance connection logged:\n{}",
        ours.join("\n")
    );
    assert!(
        ours.iter()
            .any(|l| l.contains(&format!("database={}", run.database))),
        "no target connection logged:\n{}",
        ours.join("\n")
    );
    for line in &ours {
        assert!(
            line.contains("SSL enabled"),
            "unencrypted connection: {line}"
        );
    }
}

#[test]
fn ctrl_c_cancels_the_running_statement_over_tls() {
    let lab = lab();
    let project = lab.files.scratch.join("sleep-project");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::write(
        project.join("deploy.sql"),
        "SELECT pg_catalog.pg_sleep(60);\n",
    )
    .expect("write");
    let port = lab.tls.port().to_string();
    let database = database_name("cancel");
    let child = Command::new(pgmi_tests::binary())
        .args([
            "deploy",
            project.to_str().expect("utf-8"),
            "--session",
            "portable",
        ])
        .args(["-d", &database, "-h", "localhost", "-p", &port, "-U", "app"])
        .args(["--sslmode", "verify-full", "--sslrootcert", &lab.files.ca])
        .env_clear()
        .env("HOME", &lab.files.empty_home)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pgmi-upload");
    // Wait until the statement runs on the server, then interrupt.
    let admin = &mut lab.tls.connect("postgres");
    let started = std::time::Instant::now();
    let running = "SELECT 1 FROM pg_catalog.pg_stat_activity a \
                   JOIN pg_catalog.pg_stat_ssl s USING (pid) \
                   WHERE a.datname = $1 AND a.query LIKE '%pg_sleep%' AND s.ssl";
    while admin
        .query_opt(running, &[&database])
        .expect("pg_stat_activity")
        .is_none()
    {
        assert!(started.elapsed().as_secs() < 20, "the deploy never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let interrupted = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    // The grace period after which pgmi-upload gives up on a failed cancel is 10 s.
    assert!(
        interrupted.elapsed().as_secs() < 5,
        "cancel took {:?}",
        interrupted.elapsed()
    );
}
