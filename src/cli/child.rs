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
