//! Host tuning for slotd: topology discovery, NUMA-aware core plans, IRQ
//! affinity and host checks. Library behind the `slotd-tune` binary and the
//! server's `--tuning-profile` option.
//!
//! # Layout
//!
//! * [`error`]: [`TuneError`], the one error type; file errors name the file.
//! * [`cpulist`]: the kernel's CPU list format (`0-3,8-11`).
//! * [`host`]: [`read_host`] reads `/sys` and `/proc` under a root into a
//!   [`Host`] (CPUs, SMT siblings, L3 groups, NUMA nodes, isolated CPUs,
//!   NICs with queues and IRQs, kernel settings); its docs list the
//!   fallbacks taken for missing files.
//! * [`plan`](mod@plan): [`plan()`] turns a host and [`PlanOptions`] into a
//!   [`Profile`]; its docs give the placement algorithm.
//! * [`profile`]: the [`Profile`] file (TOML), [`load_profile`] and
//!   [`Profile::check_matches`].
//! * [`apply`](mod@apply): the writes a profile makes, [`apply()`] with an
//!   undo file, [`revert`].
//! * [`checks`]: [`startup_checks_with`] behind [`startup_checks`], Redis 7.0's host warnings plus
//!   slotd's IRQ and NUMA placement warnings.
//!
//! # For the server
//!
//! ```no_run
//! use std::path::Path;
//! let profile = tuning::load_profile(Path::new("profile.toml"))?;
//! let host = tuning::read_host(Path::new("/"))?;
//! profile.check_matches(&host)?;
//! for line in tuning::startup_checks(&host, profile.shard_cpus(), 511, false) {
//!     eprintln!("{line}");
//! }
//! let _bus = profile.bus_cpu();
//! let _node_of_shard_0 = profile.numa_node_of_shard(0);
//! # Ok::<(), tuning::TuneError>(())
//! ```

pub mod apply;
pub mod checks;
pub mod cpulist;
pub mod error;
pub mod host;
pub mod plan;
pub mod profile;

use std::path::Path;

pub use apply::{apply, planned_writes, revert, Write};
pub use checks::{startup_checks_with, CheckParams};
pub use error::TuneError;
pub use host::Host;
pub use plan::{plan, PlanOptions};
pub use profile::{Profile, ProfileKind};

/// Reads and validates a profile file written by `slotd-tune plan`.
///
/// Errors: the file cannot be read ([`TuneError::Io`]), is not a profile,
/// has an unsupported format, gives one CPU to two shards, makes the bus
/// CPU a shard CPU, or writes outside `/proc/sys` and `/sys`
/// ([`TuneError::Parse`], naming the file). Does not look at the host: call
/// [`Profile::check_matches`] for that.
pub fn load_profile(path: &Path) -> Result<Profile, TuneError> {
    profile::load(path)
}

/// Reads the host's topology and settings from `/sys` and `/proc` under
/// `root` (`/` on a real host, a fixture tree in tests).
///
/// Errors when the CPU topology is unreadable or garbage (naming the file);
/// optional information that is missing falls back as listed in [`host`],
/// with a line in [`Host::notes`].
pub fn read_host(root: &Path) -> Result<Host, TuneError> {
    host::read(root)
}

/// Warning lines for running shards on `shard_cpus` on `host` with a
/// listen backlog of `tcp_backlog`, empty when all is well; the server logs
/// them at startup.
///
/// The Redis checks keep Redis 7.0's exact wording: TCP backlog above
/// `somaxconn`, THP `always` unless `thp_off` (the server turned THP off for
/// itself). Redis's `vm.overcommit_memory` warning is left out: it is about
/// fork()ed background saves, and slotd never forks. slotd's own: a
/// shard CPU that is not online, NIC IRQs whose affinity includes shard
/// CPUs, a shard CPU on a NUMA node other than the NIC's. The open-files
/// check is left out: the server raises its limit itself and logs Redis's
/// lines as it does ([`startup_checks_with`] has it, for `slotd-tune check`).
pub fn startup_checks(
    host: &Host,
    shard_cpus: &[usize],
    tcp_backlog: u64,
    thp_off: bool,
) -> Vec<String> {
    let p = CheckParams {
        tcp_backlog,
        overcommit: false,
        thp: !thp_off,
        ..CheckParams::default()
    };
    startup_checks_with(host, shard_cpus, &p)
}
