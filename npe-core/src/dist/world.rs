//! Which process of a data-parallel run this is: torchrun's variables (`RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), as set by `npe train --nproc-per-node`,
//! torchrun, Slurm or Kubernetes launchers.

use crate::error::Result;
pub use crate::tensor::World;
use std::time::Duration;

impl World {
    /// The world torchrun's variables describe (`get` reads one), or `None` for a single
    /// process (`WORLD_SIZE` unset or 1). Errors name the variable and its value.
    pub fn from_env(get: impl Fn(&str) -> Option<String>, timeout: Duration) -> Result<Option<World>> {
        let num = |name: &str| -> Result<Option<usize>> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("environment variable {name}={v:?} is not a whole number"))
                })
                .transpose()
                .map_err(Into::into)
        };
        let size = num("WORLD_SIZE")?.unwrap_or(1);
        if size <= 1 {
            return Ok(None);
        }
        let rank = num("RANK")?.ok_or(
            "WORLD_SIZE is set but RANK is not: launch with `npe train --nproc-per-node N` or torchrun, which set both",
        )?;
        if rank >= size {
            return Err(format!("RANK={rank} is not below WORLD_SIZE={size}").into());
        }
        let master_addr = get("MASTER_ADDR").filter(|a| !a.trim().is_empty()).ok_or(
            "WORLD_SIZE is set but MASTER_ADDR is not: it names the host of rank 0 (e.g. MASTER_ADDR=127.0.0.1 on one machine)",
        )?;
        let port = num("MASTER_PORT")?.ok_or("WORLD_SIZE is set but MASTER_PORT is not (e.g. MASTER_PORT=29500)")?;
        let master_port = u16::try_from(port)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("MASTER_PORT={port} is not a TCP port (1..65535)"))?;
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let attempt = num("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0);
        Ok(Some(World {
            rank,
            size,
            // One process per machine (a Kubernetes pod) when the launcher does not say.
            local_rank: num("LOCAL_RANK")?.unwrap_or(0),
            master_addr: master_addr.trim().to_string(),
            master_port,
            serve_store: rank == 0 && !agent_store,
            prefix: format!("/npe/attempt_{attempt}/"),
            timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> Result<Option<World>> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        World::from_env(|k| m.get(k).cloned(), Duration::from_secs(60))
    }

    #[test]
    fn reads_torchruns_variables() {
        let w = world(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank, w.master_addr.as_str(), w.master_port), (3, 4, 1, "node0", 29500));
        assert!(!w.serve_store, "only rank 0 serves the store");
        let agent = world(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert!(!agent.serve_store, "torchrun's agent serves the store");
        assert_eq!(agent.prefix, "/npe/attempt_2/");
    }

    #[test]
    fn a_single_process_has_no_world() {
        assert_eq!(world(&[]).unwrap(), None);
        assert_eq!(world(&[("WORLD_SIZE", "1"), ("RANK", "0")]).unwrap(), None);
    }

    #[test]
    fn bad_variables_are_named() {
        let e = world(&[("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")]).unwrap_err().to_string();
        assert!(e.contains("RANK is not"), "{e}");
        let e = world(&[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RANK=2 is not below WORLD_SIZE=2"), "{e}");
        let e = world(&[("WORLD_SIZE", "two")]).unwrap_err().to_string();
        assert!(e.contains("WORLD_SIZE=\"two\""), "{e}");
        let e = world(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "1")]).unwrap_err().to_string();
        assert!(e.contains("MASTER_ADDR"), "{e}");
        let e = world(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "70000")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a TCP port"), "{e}");
    }
}
