//! The Resources dashboard's detail panels: what dcgm-exporter's and node_exporter's boards
//! show beyond utilization (memory bandwidth, free memory, power against its limit, clocks,
//! PCIe traffic, memory per GPU process), the host's memory, disks and network, the selected
//! processes (RSS, CPU, descriptors, threads), failed peer connects and the agent's own
//! collectors and logs. Every
//! query is filtered by `$instance` (and `$gpu` for GPU series), except the collectors' fleet
//! line, and bounded by `topk`.

use crate::panel::{panel, topk, PanelSpec, WINDOW};
use crate::promql::{sel, series, sum_by, Sel};
use crate::recording::{Names, COLLECTOR_QUANTILE};
use deepwatch_core::catalog::{agent, MetricSpec};

fn inst(spec: &MetricSpec) -> Sel {
    sel(spec).re("instance", "$instance")
}

fn gpu(spec: &MetricSpec) -> Sel {
    inst(spec).re("gpu", "$gpu")
}

/// Per-second rate of a counter summed by `labels`, the top series.
fn top_rate(labels: &[&str], spec: &MetricSpec) -> String {
    topk(&sum_by(labels, &crate::promql::rate(&inst(spec), WINDOW)))
}

pub fn panels() -> Vec<PanelSpec> {
    let per_device: &[&str] = &["instance", "device"];
    let per_interface: &[&str] = &["instance", "interface"];
    let per_process: &[&str] = &["instance", "process"];
    vec![
        panel(
            "GPU memory bandwidth utilization",
            "timeseries",
            "percentunit",
            vec![(
                topk(&gpu(&agent::GPU_MEMORY_UTILIZATION).to_string()),
                "{{instance}} gpu{{gpu}}",
            )],
        ),
        panel(
            "GPU memory free",
            "timeseries",
            "bytes",
            vec![(topk(&gpu(&agent::GPU_MEMORY_FREE).to_string()), "{{instance}} gpu{{gpu}}")],
        ),
        panel(
            "GPU power against its limit",
            "timeseries",
            "percentunit",
            vec![(
                topk(&format!("{} / {}", gpu(&agent::GPU_POWER), gpu(&agent::GPU_POWER_LIMIT))),
                "{{instance}} gpu{{gpu}}",
            )],
        ),
        panel(
            "GPU clocks",
            "timeseries",
            "hertz",
            vec![
                (topk(&gpu(&agent::GPU_SM_CLOCK).to_string()), "SM {{instance}} gpu{{gpu}}"),
                (
                    topk(&gpu(&agent::GPU_MEMORY_CLOCK).to_string()),
                    "memory {{instance}} gpu{{gpu}}",
                ),
            ],
        ),
        panel(
            "GPU PCIe throughput",
            "timeseries",
            "Bps",
            vec![(
                topk(&gpu(&agent::GPU_PCIE_THROUGHPUT).to_string()),
                "{{direction}} {{instance}} gpu{{gpu}}",
            )],
        ),
        panel(
            "GPU memory by process",
            "table",
            "bytes",
            vec![(
                topk(&gpu(&agent::GPU_PROCESS_MEMORY).to_string()),
                "{{instance}} gpu{{gpu}} {{process_name}} ({{pid}})",
            )],
        ),
        panel(
            "Load per CPU",
            "timeseries",
            "none",
            vec![(
                topk(&format!(
                    "{} / ignoring (window) {}",
                    inst(&agent::HOST_LOAD).eq("window", "1m"),
                    inst(&agent::HOST_CPU_COUNT)
                )),
                "{{instance}}",
            )],
        ),
        panel(
            "Host memory free and swap used",
            "timeseries",
            "bytes",
            vec![
                (topk(&inst(&agent::HOST_MEMORY_FREE).to_string()), "free {{instance}}"),
                (topk(&inst(&agent::HOST_SWAP_USED).to_string()), "swap {{instance}}"),
            ],
        ),
        panel(
            "Disk throughput",
            "timeseries",
            "Bps",
            vec![
                (
                    top_rate(per_device, &agent::HOST_DISK_READ_BYTES),
                    "read {{instance}} {{device}}",
                ),
                (
                    top_rate(per_device, &agent::HOST_DISK_WRITTEN_BYTES),
                    "written {{instance}} {{device}}",
                ),
            ],
        ),
        panel(
            "Disk operations",
            "timeseries",
            "iops",
            vec![
                (top_rate(per_device, &agent::HOST_DISK_READS), "reads {{instance}} {{device}}"),
                (top_rate(per_device, &agent::HOST_DISK_WRITES), "writes {{instance}} {{device}}"),
            ],
        ),
        panel(
            "Disk busy time",
            "timeseries",
            "percentunit",
            vec![(top_rate(per_device, &agent::HOST_DISK_IO_TIME), "{{instance}} {{device}}")],
        ),
        panel(
            "Network throughput",
            "timeseries",
            "Bps",
            vec![
                (
                    top_rate(per_interface, &agent::HOST_NET_RX_BYTES),
                    "received {{instance}} {{interface}}",
                ),
                (
                    top_rate(per_interface, &agent::HOST_NET_TX_BYTES),
                    "sent {{instance}} {{interface}}",
                ),
            ],
        ),
        panel(
            "Network packets",
            "timeseries",
            "pps",
            vec![
                (
                    top_rate(per_interface, &agent::HOST_NET_RX_PACKETS),
                    "received {{instance}} {{interface}}",
                ),
                (
                    top_rate(per_interface, &agent::HOST_NET_TX_PACKETS),
                    "sent {{instance}} {{interface}}",
                ),
            ],
        ),
        panel(
            "Network errors and drops",
            "timeseries",
            "pps",
            vec![
                (
                    top_rate(&["instance"], &agent::HOST_NET_RX_ERRORS),
                    "receive errors {{instance}}",
                ),
                (top_rate(&["instance"], &agent::HOST_NET_TX_ERRORS), "send errors {{instance}}"),
                (top_rate(&["instance"], &agent::HOST_NET_RX_DROPS), "receive drops {{instance}}"),
                (top_rate(&["instance"], &agent::HOST_NET_TX_DROPS), "send drops {{instance}}"),
            ],
        ),
        panel(
            "Process resident memory",
            "timeseries",
            "bytes",
            vec![(
                topk(&sum_by(per_process, &inst(&agent::PROCESS_RSS).to_string())),
                "{{instance}} {{process}}",
            )],
        ),
        panel(
            "Process CPU",
            "timeseries",
            "none",
            vec![(
                top_rate(per_process, &agent::PROCESS_CPU_SECONDS),
                "cores {{instance}} {{process}}",
            )],
        ),
        panel(
            "Process open files and threads",
            "timeseries",
            "none",
            vec![
                (
                    topk(&sum_by(per_process, &inst(&agent::PROCESS_OPEN_FDS).to_string())),
                    "fds {{instance}} {{process}}",
                ),
                (
                    topk(&sum_by(per_process, &inst(&agent::PROCESS_THREADS).to_string())),
                    "threads {{instance}} {{process}}",
                ),
            ],
        ),
        panel(
            "Peer connect failures",
            "timeseries",
            "none",
            vec![(
                top_rate(&["instance", "peer"], &agent::PEER_CONNECT_FAILURES),
                "{{instance}} to {{peer}}",
            )],
        ),
        panel(
            "Collector run time p99",
            "timeseries",
            "s",
            // Recorded (`recording::panels`): from raw buckets by instance this panel took over
            // 120 s at 1,000 nodes (docs/scaling.md). The fleet line is every instance's runs
            // together, so it ignores `$instance`.
            vec![
                (
                    topk(&series(&Names::collector_duration(COLLECTOR_QUANTILE)).to_string()),
                    "fleet {{collector}}",
                ),
                (
                    topk(
                        &series(&Names::instance_collector_duration(COLLECTOR_QUANTILE))
                            .re("instance", "$instance")
                            .to_string(),
                    ),
                    "{{instance}} {{collector}}",
                ),
            ],
        ),
        panel(
            "Log lines by level",
            "timeseries",
            "none",
            vec![(top_rate(&["instance", "level"], &agent::LOG_LINES), "{{level}} {{instance}}")],
        ),
    ]
}
