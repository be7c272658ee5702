//! The `capi-epoll`, `capi-poll` and `capi-select` columns: the C player, compiled once against
//! libevent's headers and linked with `-levent`, run with `LD_LIBRARY_PATH` at a directory where
//! `libevent-2.1.so.7` is evloop's C ABI library (`evloop-capi`). The player's clock and wait
//! interposition then apply to evloop's backends, which call the same libc symbols, so the
//! traces compare exactly with libevent's fixtures of the same method.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::check::{Loaded, Runner};
use crate::fixture;
use crate::player::Player;

/// The `capi-*` backend names.
pub const CAPI_BACKENDS: &[&str] = &["capi-epoll", "capi-poll", "capi-select"];

/// `capi-epoll` → `epoll`, …
pub fn capi_method(backend: &str) -> Option<&'static str> {
    fixture::LIBEVENT_METHODS
        .iter()
        .copied()
        .find(|m| backend.strip_prefix("capi-") == Some(m))
}

/// The file names a program linked with `-levent` or `-levent_core` loads.
pub const SONAMES: &[&str] = &["libevent-2.1.so.7", "libevent_core-2.1.so.7"];

/// A directory holding evloop's C ABI library under libevent's sonames (symbolic links to
/// `libevloop_capi.so`); point `LD_LIBRARY_PATH` at it.
pub struct LibDir {
    dir: tempfile::TempDir,
}

impl LibDir {
    /// Links `lib` (a built `libevloop_capi.so`) under both sonames in a new temporary
    /// directory.
    pub fn new(lib: &Path) -> Result<LibDir, String> {
        let lib = lib.canonicalize().map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build --release -p evloop-capi)",
                lib.display()
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("evloop-capi")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        for name in SONAMES {
            std::os::unix::fs::symlink(&lib, dir.path().join(name))
                .map_err(|e| format!("linking {name}: {e}"))?;
        }
        Ok(LibDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Finds evloop's C ABI library: `$EVLOOP_CAPI_LIB` if set, otherwise `libevloop_capi.so` next
/// to the running executable (in `target/<profile>/` or its `deps/`, the newer of the two:
/// evloop-conformance depends on evloop-capi, so cargo builds it with `evconform`).
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("EVLOOP_CAPI_LIB").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or("the executable has no directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    [dir.join("libevloop_capi.so"), dir.join("deps/libevloop_capi.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .ok_or_else(|| {
            format!(
                "libevloop_capi.so not found in {} (cargo build -p evloop-capi, or set EVLOOP_CAPI_LIB)",
                dir.display()
            )
        })
}

/// Runs scenarios on the player loaded with evloop's C ABI library (`capi-*`).
pub struct CapiRunner {
    player: Player,
    lib: LibDir,
}

impl CapiRunner {
    /// Builds the player (against libevent's headers, `-levent`) and links the library.
    pub fn new(lib: &Path) -> Result<CapiRunner, String> {
        Ok(CapiRunner {
            player: Player::build()?,
            lib: LibDir::new(lib)?,
        })
    }

    /// The directory to put in `LD_LIBRARY_PATH`.
    pub fn lib_dir(&self) -> &Path {
        self.lib.path()
    }
}

impl Runner for CapiRunner {
    fn handles(&self, backend: &str) -> bool {
        capi_method(backend).is_some()
    }
    /// The player closes the descriptors it inherited and evloop's select backend creates its
    /// signal pipe with the base, as libevent does: the player numbers descriptors the same on
    /// evloop's C ABI as on libevent, so the select scan order is reproducible.
    fn strict(&self, _backend: &str) -> bool {
        true
    }
    fn run(&self, scenario: &Loaded, backend: &str) -> Result<String, String> {
        let method =
            capi_method(backend).ok_or_else(|| format!("not a capi backend: {backend}"))?;
        self.player.run_with_env(
            method,
            &scenario.ir.to_text(),
            &[
                ("LD_LIBRARY_PATH", self.lib.path().as_os_str()),
                ("EVLOOP_BACKEND", OsStr::new("")),
            ],
        )
    }
}
