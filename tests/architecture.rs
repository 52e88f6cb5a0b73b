//! The determinism boundary is visible in Cargo.toml: workflow code cannot reach the database
//! or the network because neither sqlx nor reqwest is in its dependency tree.

#[test]
fn workflows_crate_has_no_sqlx_or_reqwest() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "procure-workflows",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("temporalio-sdk"), "sanity: the tree was read");
    for banned in ["sqlx", "reqwest", "axum"] {
        assert!(
            !tree.lines().any(|l| l.split(' ').next() == Some(banned)),
            "{banned} is reachable from procure-workflows"
        );
    }
}
