//! `npe train --nproc-per-node N`: start N local workers of a data-parallel run, as torchrun
//! does, and watch them. Each worker is this program again with torchrun's variables (`RANK`,
//! `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`); the workers
//! rendezvous and train over libtorch's c10d (npe_core::dist). When one fails, the launcher
//! names it and stops the others once they have had the collective timeout to stop by
//! themselves.

use super::EXIT_FAILURE;
use npe_core::error::Result;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

/// Where a data-parallel run's processes are.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DistArgs {
    /// Start this many workers on this machine (data-parallel over libtorch's Gloo; `--backend tch`).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nproc_per_node: usize,
    /// Machines in the run (start `npe train` with the same flags on each, `--node-rank` apart).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nnodes: usize,
    /// This machine's index, `0..nnodes`.
    #[arg(long, value_name = "R", default_value_t = 0)]
    pub node_rank: usize,
    /// Address of node 0, where rank 0 serves the rendezvous store.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of the rendezvous store (default: a free port on one machine, 29500 on several).
    #[arg(long, value_name = "PORT")]
    pub master_port: Option<u16>,
}

impl DistArgs {
    /// Whether this process should start workers: more than one asked for, and it is not itself
    /// a worker (workers have `LOCAL_RANK`, as under torchrun).
    pub(crate) fn launches(&self) -> bool {
        (self.nproc_per_node > 1 || self.nnodes > 1) && std::env::var_os("LOCAL_RANK").is_none()
    }

    /// Error unless the numbers make a run.
    pub(crate) fn check(&self) -> Result<()> {
        if self.nproc_per_node == 0 || self.nnodes == 0 {
            return Err("--nproc-per-node and --nnodes must be at least 1".into());
        }
        if self.node_rank >= self.nnodes {
            return Err(format!("--node-rank {} is not below --nnodes {}", self.node_rank, self.nnodes).into());
        }
        Ok(())
    }
}

/// A free TCP port on this machine (the OS picks it).
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port for the rendezvous: {e} (pass --master-port)").into())
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(9)) => "was killed (SIGKILL)".into(),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => format!("ended: {status}"),
    }
}

/// Start the workers of this node and wait for them; `timeout` is the pipeline's
/// `train.dist_timeout_s`. The exit code is the first failed worker's (interrupted: 3).
pub(crate) fn launch(args: &DistArgs, timeout: Duration) -> ExitCode {
    if let Err(m) = args.check() {
        eprintln!("error: {m}");
        return ExitCode::from(super::EXIT_INVALID);
    }
    let port = match args.master_port {
        Some(p) => p,
        None if args.nnodes == 1 => match free_port() {
            Ok(p) => p,
            Err(m) => {
                eprintln!("error: {m}");
                return ExitCode::from(EXIT_FAILURE);
            }
        },
        None => 29500,
    };
    let n = args.nproc_per_node;
    let world = n * args.nnodes;
    // Like torchrun: the machine's cores shared out, unless the user chose.
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| (cores / n).max(1).to_string());
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find this program to start its workers: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    // Ctrl-C reaches the workers from the terminal; they agree on a step to stop at.
    let _ = ctrlc::set_handler(|| eprintln!("\nlauncher: waiting for the workers to stop"));
    eprintln!(
        "launching {n} workers (ranks {}..{} of {world}) on {}:{port}, {threads} threads each",
        args.node_rank * n,
        args.node_rank * n + n - 1,
        args.master_addr
    );
    let mut workers: Vec<(usize, Child)> = vec![];
    for local in 0..n {
        let rank = args.node_rank * n + local;
        let child = super::child::dies_with_parent(&mut Command::new(&exe))
            .args(std::env::args_os().skip(1))
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("GROUP_RANK", args.node_rank.to_string())
            .env("MASTER_ADDR", &args.master_addr)
            .env("MASTER_PORT", port.to_string())
            .env("OMP_NUM_THREADS", &threads)
            .spawn();
        match child {
            Ok(c) => {
                eprintln!("rank {rank}: pid {}", c.id());
                workers.push((rank, c));
            }
            Err(e) => {
                eprintln!("error: cannot start rank {rank}: {e}");
                for (_, c) in &mut workers {
                    let _ = c.kill();
                }
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    supervise(workers, timeout)
}

/// Wait for every worker; after the first failure, give the others the collective timeout (and
/// a margin for their report) to stop on their own, then kill them.
fn supervise(mut workers: Vec<(usize, Child)>, timeout: Duration) -> ExitCode {
    let mut first_failure: Option<ExitStatus> = None;
    let mut deadline: Option<Instant> = None;
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; workers.len()];
    loop {
        for (i, (rank, child)) in workers.iter_mut().enumerate() {
            if statuses[i].is_some() {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                statuses[i] = Some(status);
                if !status.success() && first_failure.is_none() {
                    let interrupted = status.code() == Some(super::EXIT_INTERRUPTED as i32);
                    if !interrupted {
                        eprintln!(
                            "error: rank {rank} (pid {}) {}; the other ranks stop within train.dist_timeout_s ({} s)",
                            child.id(),
                            describe(status),
                            timeout.as_secs()
                        );
                    }
                    first_failure = Some(status);
                    deadline = Some(Instant::now() + timeout + Duration::from_secs(10));
                }
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        // A stopped worker cannot finish its report: kill it now rather than at the deadline.
        if first_failure.is_some() {
            for (i, (rank, child)) in workers.iter_mut().enumerate() {
                if statuses[i].is_none() && super::child::is_stopped(child.id()) {
                    eprintln!(
                        "error: rank {rank} (pid {}) is stopped (SIGSTOP?) and cannot finish: killing it",
                        child.id()
                    );
                    let _ = child.kill();
                    statuses[i] = child.wait().ok();
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            for (i, (rank, child)) in workers.iter_mut().enumerate() {
                if statuses[i].is_none() {
                    eprintln!("error: rank {rank} (pid {}) did not stop after the failure: killing it", child.id());
                    let _ = child.kill();
                    statuses[i] = child.wait().ok();
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match first_failure {
        None => ExitCode::SUCCESS,
        Some(status) => ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(EXIT_FAILURE)),
    }
}
