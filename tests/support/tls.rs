//! Test certificates made with `openssl`: a CA, and leaf certificates it signs.

use std::path::{Path, PathBuf};

/// A fresh directory for one test's certificates, `procure-tls-TAG-…` in the system's temp dir.
pub fn pki_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "procure-tls-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `openssl ARGS` in `dir`, failing the test when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` making a new P-256 key into `key` (unencrypted) and `out` for subject `cn`:
/// `kind` is `-x509` for a self-signed CA certificate, `-new` for a signing request.
fn new_key_request(dir: &Path, kind: &str, key: &str, out: &str, cn: &str) {
    let subject = format!("/CN={cn}");
    let mut args = vec![
        "req",
        kind,
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        &subject,
    ];
    // A certificate is valid two days; a signing request has no validity.
    if kind == "-x509" {
        args.extend(["-days", "2"]);
    }
    openssl(dir, &args);
}

/// A CA (`NAME-ca.crt`, `NAME-ca.key`).
pub fn make_ca(dir: &Path, name: &str) {
    new_key_request(
        dir,
        "-x509",
        &format!("{name}-ca.key"),
        &format!("{name}-ca.crt"),
        &format!("{name} test CA"),
    );
}

/// A leaf certificate `NAME.crt` / `NAME.key` signed by CA `ca`.
pub fn make_leaf(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    new_key_request(
        dir,
        "-new",
        &format!("{name}.key"),
        &format!("{name}.csr"),
        name,
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.crt"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// A server certificate `NAME.crt` / `NAME.key` for `localhost` and 127.0.0.1, signed by CA `ca`.
pub fn make_server_leaf(dir: &Path, ca: &str, name: &str) {
    make_leaf(
        dir,
        ca,
        name,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
}
