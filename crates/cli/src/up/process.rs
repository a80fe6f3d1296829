//! Child processes of `weft up`: started so they die with it, stopped in
//! order with SIGTERM (graceful drain) and SIGKILL after a grace period.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct Proc {
    pub name: String,
    pub child: Child,
}

/// Asks the kernel to SIGTERM the child if `weft up` itself dies, even by
/// SIGKILL, so no process is ever left behind.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

pub fn spawn(
    name: &str,
    program: &std::path::Path,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(program);
    cmd.args(args).envs(env).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).kill_on_drop(true);
    // Own process group: a terminal's Ctrl-C reaches weft up only, which
    // then stops the children in order.
    cmd.process_group(0);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start {name} ({}): {e}", program.display()))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(marked(name.to_owned(), out));
    }
    Ok(Proc { name: name.to_owned(), child })
}

/// Copies a child's stdout (a proxy's access log, an app's output) to
/// weft up's, each line marked with the child's name.
async fn marked(name: String, out: tokio::process::ChildStdout) {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(out).lines();
    // Read to the end even when weft up's stdout is gone, so a child never
    // blocks on a full pipe.
    let mut open = true;
    while let Ok(Some(line)) = lines.next_line().await {
        open = open && writeln!(std::io::stdout().lock(), "{name} | {line}").is_ok();
    }
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }

    /// Waits up to `grace` for exit, then kills.
    pub async fn stop(&mut self, grace: Duration) {
        self.terminate();
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            tracing::warn!(process = %self.name, "did not stop in time; killing");
            let _ = self.child.kill().await;
        }
    }
}

/// Hands out ports that are free now and not yet promised to another
/// process of this run (the OS may offer the same free port twice).
pub struct Ports {
    promised: std::collections::HashSet<u16>,
    next: u32,
    /// Second octet of this run's sidecar addresses, random so that two
    /// `weft up` runs on one machine do not share addresses.
    base: u8,
    /// Never hand out a declared port (`--free-ports`).
    pub ignore_declared: bool,
}

impl Default for Ports {
    fn default() -> Self {
        let base = 1
            + (std::process::id() % 200) as u8
            + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) % 50)
                as u8;
        Ports { promised: Default::default(), next: 0, base, ignore_declared: false }
    }
}

impl Ports {
    /// A loopback address of its own for each sidecar (127.B.x.y; Linux
    /// answers on all of 127/8), so two sidecars can both serve a TCP
    /// service port such as 6379.
    pub fn next_ip(&mut self) -> String {
        let k = self.next;
        self.next += 1;
        format!("127.{}.{}.{}", self.base, k / 250, 2 + k % 250)
    }

    pub fn free(&mut self) -> anyhow::Result<u16> {
        for _ in 0..100 {
            let p = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            if self.promised.insert(p) {
                return Ok(p);
            }
        }
        anyhow::bail!("no free port found")
    }

    /// `wanted` if it is free and unpromised, else any free port.
    pub fn prefer(&mut self, wanted: u16) -> anyhow::Result<u16> {
        if !self.ignore_declared && !self.promised.contains(&wanted) && port_is_free(wanted) {
            self.promised.insert(wanted);
            return Ok(wanted);
        }
        self.free()
    }
}

pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
