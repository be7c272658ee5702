//! Helpers shared by the integration tests that drive the kv example's custom `evsim`.
use std::path::PathBuf;
use std::process::Command;

/// The example's `evsim` (the built-in targets plus `kv`, whose `--param bug=true` plants a
/// bug), built with this test's profile.
pub fn kv_evsim() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/PROFILE");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.args(["build", "-q", "-p", "evloop-sim", "--example", "kv"]);
    if release {
        build.arg("--release");
    }
    let st = build.status().expect("cargo build --example kv");
    assert!(st.success(), "building the kv example failed");
    profile_dir.join("examples").join("kv")
}
