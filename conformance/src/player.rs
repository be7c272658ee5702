//! Building and running the C player (`player/player.c`) against the system libevent.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

/// The player's source, embedded so the binary can build it anywhere.
pub const SOURCE: &str = include_str!("../player/player.c");

/// How long one player run may take (about, in wall-clock time) before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The watchdog naps this long between checks of the player process.
const NAP: Duration = Duration::from_millis(2);

/// Naps before the watchdog kills the player (RUN_TIMEOUT / NAP).
const RUN_TIMEOUT_NAPS: u32 = (RUN_TIMEOUT.as_millis() / NAP.as_millis()) as u32;

/// How many trace lines a failure report shows.
const TAIL_LINES: usize = 20;

/// A compiled player.
pub struct Player {
    _dir: tempfile::TempDir,
    exe: PathBuf,
}

/// The C compiler: `$CC`, or `cc`.
pub fn compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "cc".to_string())
}

impl Player {
    /// Compiles the player with the system C compiler:
    /// `cc -std=gnu11 -O1 -Wall -o player player.c -levent -ldl -rdynamic`.
    pub fn build() -> Result<Player, String> {
        let dir = tempfile::Builder::new()
            .prefix("evconform-player")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let src = dir.path().join("player.c");
        std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
        let exe = dir.path().join("player");
        let cc = compiler();
        let out = crate::spawn::output(
            Command::new(&cc)
                .args(["-std=gnu11", "-O1", "-Wall", "-o"])
                .arg(&exe)
                .arg(&src)
                .args(["-levent", "-ldl", "-rdynamic"]),
        )
            .map_err(|e| format!("cannot run the C compiler '{cc}': {e} (install a C compiler and libevent-dev 2.1.12)"))?;
        if !out.status.success() {
            return Err(format!(
                "building the player failed ({cc} … -levent; is libevent-dev 2.1.12 installed?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Player { _dir: dir, exe })
    }

    /// The compiled executable.
    pub fn path(&self) -> &Path {
        &self.exe
    }

    /// Runs the IR text on libevent's `method` (`epoll`, `poll` or `select`); returns the trace.
    pub fn run(&self, method: &str, ir_text: &str) -> Result<String, String> {
        self.run_with_env(method, ir_text, &[])
    }

    /// As [`Player::run`], with extra environment variables (the `capi-*` columns set
    /// `LD_LIBRARY_PATH` so that the same executable loads evloop's C ABI library instead of
    /// libevent).
    pub fn run_with_env(
        &self,
        method: &str,
        ir_text: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<String, String> {
        let mut cmd = Command::new(&self.exe);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = crate::spawn::spawn(
            cmd.arg(method)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .map_err(|e| format!("cannot start the player: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let ir = ir_text.to_string();
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(ir.as_bytes());
        });
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.stderr.take().ok_or("no stderr")?;
        let out_t = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stdout.read_to_end(&mut s);
            s
        });
        let err_t = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            s
        });
        // A watchdog that does not read the clock (the workspace bans Instant::now): it counts naps.
        let mut naps = 0u32;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if naps >= RUN_TIMEOUT_NAPS => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the player ran longer than {RUN_TIMEOUT:?} and was killed"
                    ));
                }
                Ok(None) => {
                    naps += 1;
                    thread::sleep(NAP);
                }
                Err(e) => return Err(format!("waiting for the player: {e}")),
            }
        };
        let _ = writer.join();
        let out = out_t.join().unwrap_or_default();
        let err = err_t.join().unwrap_or_default();
        let out =
            String::from_utf8(out).map_err(|_| "the player printed invalid UTF-8".to_string())?;
        if !status.success() {
            let lines: Vec<&str> = out.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            return Err(format!(
                "the player failed ({status}):\n{}{}",
                String::from_utf8_lossy(&err),
                if lines.is_empty() {
                    String::new()
                } else {
                    format!(
                        "last {} of {} trace lines:\n{}\n",
                        tail.len(),
                        lines.len(),
                        tail.join("\n")
                    )
                }
            ));
        }
        Ok(out)
    }
}

/// Why the player cannot be used here, if it cannot (for tests that need libevent).
pub fn unavailable() -> Option<String> {
    Player::build().err()
}
