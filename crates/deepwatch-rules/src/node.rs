//! Node alerts from the agent's host, process, log and peer collectors (`rules/node.yml`):
//! CPU wait (pressure stall), memory and filesystem space, a selected process gone, a tailed
//! log file missing, and an unreachable peer node. (CPU iowait, memory leaks and inter-node
//! latency live with the other threshold pairs in `alerts`.)

use crate::condition::{case, Input, Scenario};
use crate::hysteresis::{level_pair, Watched};
use crate::ids::{fired, node_example, node_with, RESOURCES};
use crate::model::{Alert, Group, Rule, RuleFile, TestCase};
use crate::promql::sel;
use crate::recording::Names;
use crate::Ctx;
use deepwatch_core::catalog::agent;

pub const CPU_WAIT: &str = "CPUWaitHigh";
pub const HOST_MEMORY: &str = "HostMemoryHigh";
pub const FILESYSTEM: &str = "HostFilesystemAlmostFull";
pub const PROCESS_GONE: &str = "ProcessNotRunning";
pub const LOG_FILE_MISSING: &str = "LogFileMissing";
pub const PEER_UNREACHABLE: &str = "PeerUnreachable";

fn levels(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let t = &ctx.cfg.thresholds;
    for (w, level) in [
        (
            Watched {
                alertname: CPU_WAIT,
                series: Names::cpu_wait(),
                ids: &["instance"],
                example: node_example(),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "CPU wait (seconds per second some task waited for a CPU)",
                unit: "s/s",
            },
            &t.cpu_wait,
        ),
        (
            Watched {
                alertname: HOST_MEMORY,
                series: Names::host_memory_used(),
                ids: &["instance"],
                example: node_example(),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "Host memory in use",
                unit: "",
            },
            &t.host_memory,
        ),
        (
            Watched {
                alertname: FILESYSTEM,
                series: Names::filesystem_used(),
                ids: &["instance", "device", "mountpoint"],
                example: node_with(&[
                    ("device", "/dev/nvme0n1p2"),
                    ("mountpoint", "/"),
                    ("fstype", "ext4"),
                ]),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "Filesystem space in use",
                unit: "",
            },
            &t.disk_space,
        ),
    ] {
        let (pair, test) = level_pair(ctx, &w, level);
        alerts.extend(pair);
        tests.push(test);
    }
}

fn gone(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let gauge = |good: f64, bad: f64| Input::Gauge { good: Some(good), bad: Some(bad) };
    let mut cases = vec![
        (
            Alert {
                name: PROCESS_GONE.into(),
                expr: format!("{} == 0", sel(&agent::PROCESS_MATCHED)),
                for_secs: ctx.scaled(60),
                keep_firing_secs: ctx.scaled(60),
                severity: "warning",
                labels: vec![],
                summary: "No process matches {{ $labels.process }} on {{ $labels.instance }}".into(),
                description: "The process the agent watches (an engine, usually) is not running: it exited or was killed and nothing restarted it. Clears a minute after it is back.".into(),
                dashboard: RESOURCES,
                condition: String::new(),
            },
            agent::PROCESS_MATCHED.name,
            node_with(&[("process", "vllm")]),
            gauge(1.0, 0.0),
        ),
        (
            Alert {
                name: LOG_FILE_MISSING.into(),
                expr: format!("{} == 0", sel(&agent::LOG_FILE_UP)),
                for_secs: ctx.scaled(300),
                keep_firing_secs: ctx.scaled(60),
                severity: "warning",
                labels: vec![],
                summary: "Tailed log {{ $labels.file }} on {{ $labels.instance }} is missing".into(),
                description: "The agent cannot read a log file it is configured to tail, so its level counts and pattern alerts (CUDA out of memory among them) are blind for that file.".into(),
                dashboard: RESOURCES,
                condition: String::new(),
            },
            agent::LOG_FILE_UP.name,
            node_with(&[("file", "/var/log/vllm/engine.log")]),
            gauge(1.0, 0.0),
        ),
        (
            Alert {
                name: PEER_UNREACHABLE.into(),
                expr: format!("{} == 0", sel(&agent::PEER_UP)),
                for_secs: ctx.scaled(60),
                keep_firing_secs: ctx.scaled(60),
                severity: "warning",
                labels: vec![],
                summary: "{{ $labels.instance }} cannot connect to peer {{ $labels.peer }}".into(),
                description: "TCP connects to the peer node fail (refused, unreachable or timed out): multi-node tensor or pipeline parallel traffic between them is broken.".into(),
                dashboard: RESOURCES,
                condition: String::new(),
            },
            agent::PEER_UP.name,
            node_with(&[("peer", "gpu-node-2:9844")]),
            gauge(1.0, 0.0),
        ),
    ];
    for (alert, metric, labels, input) in cases.drain(..) {
        tests.push(case(
            ctx,
            &alert,
            Scenario {
                name: "fires when gone, clears when back".into(),
                inputs: vec![(metric.into(), labels.clone(), input)],
                fired: vec![fired(&labels, "warning")],
                on_lag: 0,
                off_lag: 0,
            },
        ));
        alerts.push(alert);
    }
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut alerts = Vec::new();
    let mut tests = Vec::new();
    levels(ctx, &mut alerts, &mut tests);
    gone(ctx, &mut alerts, &mut tests);
    RuleFile {
        stem: "node",
        groups: vec![Group {
            name: "deepwatch-node".into(),
            interval_secs: ctx.eval(),
            rules: alerts.into_iter().map(Rule::Alert).collect(),
        }],
        tests,
    }
}
