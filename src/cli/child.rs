//! Child processes that do not outlive their parent: `npe study`'s runs and the launcher's
//! workers get SIGTERM when the process that started them dies, however it dies (SIGKILL
//! included), so no orphan keeps training and holding a run's lock.

use std::process::Command;

/// Make `cmd`'s process receive SIGTERM when this process's thread that spawns it dies.
pub(crate) fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the call above: then nobody would signal us.
                if libc::getppid() != parent {
                    libc::_exit(143);
                }
                Ok(())
            });
        }
    }
    cmd
}

/// Whether process `pid` is stopped (SIGSTOP, SIGTSTP, a debugger): it cannot finish on its own.
/// Always false where `/proc` does not say.
pub(crate) fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['T', 't'])))
        .unwrap_or(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_stopped_process_is_seen_as_stopped() {
        let mut c = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!super::is_stopped(c.id()));
        let kill = |sig: &str| std::process::Command::new("kill").args([sig, &c.id().to_string()]).status().unwrap();
        kill("-STOP");
        let start = std::time::Instant::now();
        while !super::is_stopped(c.id()) && start.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(super::is_stopped(c.id()));
        c.kill().unwrap();
        c.wait().unwrap();
    }
}
