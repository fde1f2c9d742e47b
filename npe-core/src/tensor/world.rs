//! What a backend's collective engine needs to join a data-parallel run (read from the
//! environment by `npe_core::dist`).

use std::time::Duration;

/// One process's place in a data-parallel run.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    /// This process's rank, `0..size`.
    pub rank: usize,
    /// Processes in the run.
    pub size: usize,
    /// Rank on this machine (`LOCAL_RANK`, 0 when unset); picks the GPU, `cuda:LOCAL_RANK`.
    pub local_rank: usize,
    /// Host of the rendezvous store.
    pub master_addr: String,
    /// Its port.
    pub master_port: u16,
    /// This process serves the store (rank 0, unless a launcher's agent serves it, as torchrun's).
    pub serve_store: bool,
    /// Prefix of every key in the store (one per restart attempt).
    pub prefix: String,
    /// A collective or rendezvous that takes longer fails, naming the ranks that did not answer.
    pub timeout: Duration,
}
