//! Process limits the gateway depends on. Every client and upstream connection holds a file
//! descriptor, and a soft RLIMIT_NOFILE of 1,024 (the usual default) lets about a thousand idle
//! connections stall every new request; so the soft limit is raised to the hard one at start,
//! as nginx's `worker_rlimit_nofile` and Envoy's deployments do, and exported.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The open-file limits after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// `None`: unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit; the limits in force afterwards.
pub fn raise_open_files() -> FileLimits {
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let raised = Rlimit { current: before.maximum, maximum: before.maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, soft = ?before.current, hard = ?before.maximum, "cannot raise the open-file limit");
        }
    }
    let after = getrlimit(Resource::Nofile);
    if after.current.is_some_and(|n| n < 4096) {
        tracing::warn!(
            soft = ?after.current,
            "open-file limit below 4096: raise the hard limit (LimitNOFILE=, ulimit -Hn) for many connections"
        );
    }
    FileLimits { soft: after.current, hard: after.maximum }
}
