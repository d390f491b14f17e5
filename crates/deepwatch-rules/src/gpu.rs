//! GPU health alerts from the agent's NVML collector (`rules/gpu.yml`): XID errors (fatal
//! codes critical, NVLink codes on their own), ECC errors, thermal and power throttling,
//! PCIe replays, a GPU fallen off the bus, NVML no longer answering on a node that had GPUs,
//! and the CUDA/driver dependency check. Every name starts with `GPU`, so a node that is
//! down mutes them (Alertmanager inhibition).

use crate::condition::{case, Input, Scenario};
use crate::ids::{fired, gpu_example, l, node_with, RESOURCES};
use crate::model::{Alert, Group, Rule, RuleFile, TestCase};
use crate::promql::{dur, num, sel};
use crate::Ctx;
use deepwatch_core::catalog::{agent, common};
use deepwatch_core::config::rules::cuda_version;

pub const XID: &str = "GPUXidError";
pub const NVLINK: &str = "GPUNVLinkError";
pub const ECC_UNCORRECTED: &str = "GPUEccUncorrectedErrors";
pub const ECC_CORRECTED: &str = "GPUEccCorrectedErrorsHigh";
pub const THERMAL: &str = "GPUThermalThrottling";
pub const POWER: &str = "GPUPowerThrottling";
pub const PCIE_REPLAYS: &str = "GPUPCIeReplaysHigh";
pub const FELL_OFF_BUS: &str = "GPUFellOffBus";
pub const DRIVER_UNAVAILABLE: &str = "GPUDriverUnavailable";
pub const CUDA_UNSUPPORTED: &str = "GPUCudaVersionUnsupported";

/// XID codes after which the GPU needs a reset or the node a reboot (NVIDIA's XID catalog:
/// double-bit ECC 48, GSP/PMU halts 61 62, row-remap and page-retirement failures 63 64,
/// fallen off the bus 79, ECC rate and contained/uncontained errors 92 94 95, GSP RPC
/// timeouts 119 120).
pub const FATAL_XIDS: &str = "48|61|62|63|64|79|92|94|95|119|120";
/// XID codes of NVLink errors, the only NVLink faults NVML reports without DCGM (74 on every
/// generation; 144 to 150 on Hopper and later drivers).
pub const NVLINK_XIDS: &str = "74|144|145|146|147|148|149|150";

/// `increase(x[w]) > 0`, or the series is new (counters the agent creates on their first
/// event start at 1, which `increase` alone would miss).
fn new_events(x: &str, w: &str) -> String {
    format!("increase({x}[{w}]) > 0 or ({x} unless {x} offset {w})")
}

fn gpu_ids() -> Vec<&'static str> {
    vec!["job", "instance", "gpu", "gpu_uuid", "gpu_name"]
}

/// A regular expression matching every `MAJOR.MINOR` version below `min`.
pub fn older_than(min: (u32, u32)) -> String {
    let (major, minor) = min;
    let below = |n: u32| (0..n).map(|v| v.to_string()).collect::<Vec<_>>().join("|");
    let mut parts = Vec::new();
    if major > 0 {
        parts.push(format!("({})\\.[0-9]+", below(major)));
    }
    if minor > 0 {
        parts.push(format!("{major}\\.({})", below(minor)));
    }
    if parts.is_empty() {
        // Nothing is older than 0.0: a regex that matches no version.
        return "^$".into();
    }
    parts.join("|")
}

struct Built {
    alerts: Vec<Alert>,
    tests: Vec<TestCase>,
}

fn alert(name: &str, severity: &'static str, expr: String, for_secs: u64, keep: u64) -> Alert {
    Alert {
        name: name.into(),
        expr,
        for_secs,
        keep_firing_secs: keep,
        severity,
        labels: vec![],
        summary: String::new(),
        description: String::new(),
        dashboard: RESOURCES,
        condition: String::new(),
    }
}

fn xid(ctx: &Ctx<'_>, out: &mut Built) {
    let w = ctx.window();
    let keep = ctx.scaled(900);
    let x = sel(&agent::GPU_XID_ERRORS);
    let fatal = x.clone().re("xid", FATAL_XIDS);
    let other = format!("{}{{xid!~\"{FATAL_XIDS}|{NVLINK_XIDS}\"}}", agent::GPU_XID_ERRORS.name);
    let mut critical = alert(XID, "critical", new_events(&fatal.to_string(), &w), 0, keep);
    critical.summary =
        "GPU {{ $labels.gpu }} on {{ $labels.instance }} reported fatal XID {{ $labels.xid }}"
            .into();
    critical.description = format!("XID {{{{ $labels.xid }}}} on GPU {{{{ $labels.gpu }}}} ({{{{ $labels.gpu_uuid }}}}) usually needs a GPU reset or a node reboot; the engine on it is likely dead or corrupt. Fires on the event and stays {} after the last one.", dur(keep));
    let mut warning = alert(XID, "warning", new_events(&other, &w), 0, keep);
    warning.summary =
        "GPU {{ $labels.gpu }} on {{ $labels.instance }} reported XID {{ $labels.xid }}".into();
    warning.description = format!("The driver reported XID {{{{ $labels.xid }}}} on GPU {{{{ $labels.gpu }}}}: often an application fault (13, 31, 43, 45), sometimes the first sign of failing hardware. Stays {} after the last event.", dur(keep));
    let lag = ctx.window_secs().div_ceil(ctx.eval()) + 1;
    let code = |c: &str| {
        let mut x = gpu_example();
        x.push(("xid".into(), c.into()));
        x
    };
    let xid_name = agent::GPU_XID_ERRORS.name;
    out.tests.push(case(
        ctx,
        &critical,
        Scenario {
            name: "a fatal XID (79) fires critical; an application XID (13) warns".into(),
            inputs: vec![
                (xid_name.into(), code("79"), Input::Counter { per_sample: 1.0, appears: true }),
                (xid_name.into(), code("13"), Input::Counter { per_sample: 1.0, appears: true }),
            ],
            fired: vec![fired(&code("79"), "critical"), fired(&code("13"), "warning")],
            on_lag: 0,
            off_lag: lag,
        },
    ));
    out.alerts.extend([critical, warning]);

    let nvlink = x.re("xid", NVLINK_XIDS);
    let mut a = alert(NVLINK, "critical", new_events(&nvlink.to_string(), &w), 0, keep);
    a.summary =
        "NVLink error (XID {{ $labels.xid }}) on GPU {{ $labels.gpu }} of {{ $labels.instance }}"
            .into();
    a.description = format!("The driver reported an NVLink error on GPU {{{{ $labels.gpu }}}}. Tensor-parallel engines spanning NVLink slow down or hang; the link usually needs a GPU reset. Stays {} after the last event.", dur(keep));
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "XID 74 fires".into(),
            inputs: vec![(
                xid_name.into(),
                code("74"),
                Input::Counter { per_sample: 1.0, appears: true },
            )],
            fired: vec![fired(&code("74"), "critical")],
            on_lag: 0,
            off_lag: lag,
        },
    ));
    out.alerts.push(a);
}

fn ecc(ctx: &Ctx<'_>, out: &mut Built) {
    let t = &ctx.cfg.thresholds;
    let w = ctx.window();
    let keep = ctx.scaled(900);
    let ecc = sel(&agent::GPU_ECC_ERRORS).eq("counter_type", "volatile");
    let by = format!("sum by ({}) ", gpu_ids().join(", "));
    let uncorrected = ecc.clone().eq("error_type", "uncorrected");
    let mut a = alert(
        ECC_UNCORRECTED,
        "critical",
        format!("{by}(increase({}[{w}])) > 0", uncorrected),
        0,
        keep,
    );
    a.summary = "Uncorrected ECC errors on GPU {{ $labels.gpu }} of {{ $labels.instance }}".into();
    a.description = format!("The GPU's memory returned data it could not correct: the process that read it is corrupt or dead, and the page must be retired or the row remapped (GPU reset). Stays {} after the last error.", dur(keep));
    let series = |error_type: &str| {
        let mut x = gpu_example();
        x.extend(l(&[("error_type", error_type), ("counter_type", "volatile")]));
        x
    };
    let name = agent::GPU_ECC_ERRORS.name;
    let lag = ctx.window_secs().div_ceil(ctx.eval()) + 1;
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "new uncorrected errors fire; a count from before the window does not".into(),
            inputs: vec![(
                name.into(),
                series("uncorrected"),
                Input::Counter { per_sample: 1.0, appears: false },
            )],
            fired: vec![fired(&gpu_example(), "critical")],
            on_lag: 0,
            off_lag: lag,
        },
    ));
    out.alerts.push(a);

    let hour = ctx.scaled(3600).max(4 * ctx.scrape());
    let per_window = t.ecc_corrected_per_hour * hour as f64 / ctx.scaled(3600).max(1) as f64;
    let corrected = ecc.eq("error_type", "corrected");
    let mut a = alert(
        ECC_CORRECTED,
        "warning",
        format!("{by}(increase({corrected}[{}])) > {}", dur(hour), num(per_window)),
        0,
        keep,
    );
    a.summary = format!("GPU {{{{ $labels.gpu }}}} of {{{{ $labels.instance }}}} corrects more than {} ECC errors an hour", num(t.ecc_corrected_per_hour));
    a.description = "Corrected errors cost nothing yet, but a rising rate precedes uncorrected ones and row-remap failures: plan to drain the GPU.".into();
    // Enough corrected errors per sample to pass the hourly threshold within a quarter hour.
    let per_sample = (per_window * 4.0 / hour.div_ceil(ctx.eval()) as f64).max(1.0).ceil();
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "a corrected-error burst above the hourly rate warns".into(),
            inputs: vec![(
                name.into(),
                series("corrected"),
                Input::Counter { per_sample, appears: false },
            )],
            fired: vec![fired(&gpu_example(), "warning")],
            on_lag: hour.div_ceil(ctx.eval()) + 1,
            off_lag: hour.div_ceil(ctx.eval()) + 1,
        },
    ));
    out.alerts.push(a);

    let replays = sel(&agent::GPU_PCIE_REPLAYS);
    let mut a = alert(
        PCIE_REPLAYS,
        "warning",
        format!("rate({}) * 60 > {}", replays.range(&w), num(t.pcie_replays_per_min)),
        ctx.scaled(300),
        ctx.scaled(300),
    );
    a.summary = format!(
        "PCIe link of GPU {{{{ $labels.gpu }}}} on {{{{ $labels.instance }}}} replays more than {} packets a minute",
        num(t.pcie_replays_per_min)
    );
    a.description = "Link-level retransmissions: a marginal riser, cable or slot. Host-device copies slow down; it often ends in an XID 79.".into();
    let per_sample = (t.pcie_replays_per_min * 4.0 * ctx.eval() as f64 / 60.0).ceil().max(1.0);
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "sustained replays warn".into(),
            inputs: vec![(
                agent::GPU_PCIE_REPLAYS.name.into(),
                gpu_example(),
                Input::Counter { per_sample, appears: false },
            )],
            fired: vec![fired(&gpu_example(), "warning")],
            on_lag: lag,
            off_lag: lag,
        },
    ));
    out.alerts.push(a);
}

fn throttling(ctx: &Ctx<'_>, out: &mut Built) {
    let throttle = sel(&agent::GPU_THROTTLE_REASON);
    let by = format!("max by ({}) ", gpu_ids().join(", "));
    let reason = |r: &str| {
        let mut x = gpu_example();
        x.push(("reason".into(), r.into()));
        x
    };
    let name = agent::GPU_THROTTLE_REASON.name;
    let for_secs = ctx.scaled(60);
    let keep = ctx.scaled(300);

    let mut critical = alert(
        THERMAL,
        "critical",
        format!("{by}({}) == 1", throttle.clone().eq("reason", "hw_thermal_slowdown")),
        for_secs,
        keep,
    );
    critical.summary =
        "GPU {{ $labels.gpu }} of {{ $labels.instance }} is in hardware thermal slowdown".into();
    critical.description = format!("The GPU halves its clocks to protect itself: decode and prefill slow down accordingly. Check cooling now. Clears {} after the slowdown ends.", dur(keep));
    let mut warning = alert(
        THERMAL,
        "warning",
        format!(
            "{by}({}) == 1",
            throttle.clone().re("reason", "sw_thermal_slowdown|hw_thermal_slowdown")
        ),
        for_secs,
        keep,
    );
    warning.summary =
        "GPU {{ $labels.gpu }} of {{ $labels.instance }} throttles its clocks for heat".into();
    warning.description = format!("The driver lowers clocks to hold the temperature under its slowdown limit; throughput drops. Clears {} after throttling ends.", dur(keep));
    out.tests.push(case(
        ctx,
        &critical,
        Scenario {
            name: "hardware thermal slowdown fires critical and warning".into(),
            inputs: vec![
                (
                    name.into(),
                    reason("hw_thermal_slowdown"),
                    Input::Gauge { good: Some(0.0), bad: Some(1.0) },
                ),
                (
                    name.into(),
                    reason("sw_thermal_slowdown"),
                    Input::Gauge { good: Some(0.0), bad: Some(0.0) },
                ),
                (
                    name.into(),
                    reason("sw_power_cap"),
                    Input::Gauge { good: Some(1.0), bad: Some(1.0) },
                ),
            ],
            fired: vec![fired(&gpu_example(), "critical"), fired(&gpu_example(), "warning")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    out.alerts.extend([critical, warning]);

    let mut power = alert(
        POWER,
        "warning",
        format!("{by}({}) == 1", throttle.re("reason", "hw_power_brake_slowdown|hw_slowdown")),
        for_secs,
        keep,
    );
    power.summary =
        "GPU {{ $labels.gpu }} of {{ $labels.instance }} is slowed by a hardware power signal"
            .into();
    power.description = format!("Hardware slowdown or the external power brake is active: the power supply or the board signals a problem (the software power cap, normal at full load, does not count). Clears {} after it ends.", dur(keep));
    out.tests.push(case(
        ctx,
        &power,
        Scenario {
            name: "power brake warns; the software power cap alone does not".into(),
            inputs: vec![
                (
                    name.into(),
                    reason("hw_power_brake_slowdown"),
                    Input::Gauge { good: Some(0.0), bad: Some(1.0) },
                ),
                (
                    name.into(),
                    reason("sw_power_cap"),
                    Input::Gauge { good: Some(1.0), bad: Some(1.0) },
                ),
            ],
            fired: vec![fired(&gpu_example(), "warning")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    out.alerts.push(power);
}

fn availability(ctx: &Ctx<'_>, out: &mut Built) {
    let t = &ctx.cfg.thresholds;
    let keep = ctx.scaled(300);
    let mut a = alert(
        FELL_OFF_BUS,
        "critical",
        format!("{} == 0", sel(&agent::GPU_UP)),
        ctx.scaled(10),
        keep,
    );
    a.summary = "GPU {{ $labels.gpu }} of {{ $labels.instance }} stopped answering NVML".into();
    a.description = "The GPU fell off the bus or vanished from enumeration (XID 79, GPU_IS_LOST): its engine is dead and the GPU needs a reset or the node a reboot.".into();
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "a lost GPU pages".into(),
            inputs: vec![(
                agent::GPU_UP.name.into(),
                gpu_example(),
                Input::Gauge { good: Some(1.0), bad: Some(0.0) },
            )],
            fired: vec![fired(&gpu_example(), "critical")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    out.alerts.push(a);

    let collector = sel(&common::COLLECTOR_UP).eq("collector", "gpu");
    let gpus = sel(&agent::GPU_COUNT);
    let mut a = alert(
        DRIVER_UNAVAILABLE,
        "critical",
        format!(
            "{collector} == 0 and on (job, instance) max_over_time({}) > 0",
            gpus.range(&dur(ctx.scaled(86_400)))
        ),
        ctx.scaled(30),
        keep,
    );
    a.summary = "NVML stopped answering on {{ $labels.instance }}, a node with GPUs".into();
    a.description = "The GPU collector fails on a node that reported GPUs within the last day: the NVIDIA driver or libnvidia-ml is missing, mismatched after an upgrade, or hung. Engines on this node cannot use their GPUs.".into();
    let collector_labels = node_with(&[("collector", "gpu")]);
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "NVML fails on a node that had GPUs".into(),
            inputs: vec![
                (
                    common::COLLECTOR_UP.name.into(),
                    collector_labels.clone(),
                    Input::Gauge { good: Some(1.0), bad: Some(0.0) },
                ),
                (
                    agent::GPU_COUNT.name.into(),
                    crate::ids::node_example(),
                    Input::Gauge { good: Some(8.0), bad: None },
                ),
            ],
            fired: vec![fired(&collector_labels, "critical")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    out.alerts.push(a);

    let min = cuda_version(&t.min_cuda_version).unwrap_or((0, 0));
    let old = sel(&agent::GPU_DRIVER_INFO).re("cuda_version", &older_than(min));
    let mut a = alert(CUDA_UNSUPPORTED, "warning", old.to_string(), ctx.scaled(300), keep);
    a.summary = format!(
        "Driver on {{{{ $labels.instance }}}} supports CUDA {{{{ $labels.cuda_version }}}}, below the required {}",
        t.min_cuda_version
    );
    a.description = format!("Dependency check: driver {{{{ $labels.driver_version }}}} exposes CUDA {{{{ $labels.cuda_version }}}}, but the engines need at least {}. An engine built for a newer CUDA fails to start (or falls back to CPU) on this node.", t.min_cuda_version);
    let info = |cuda: &str| node_with(&[("driver_version", "470.223.02"), ("cuda_version", cuda)]);
    let old_cuda = format!("{}.{}", min.0.saturating_sub(1), 8);
    let ok_cuda = format!("{}.{}", min.0, min.1 + 3);
    out.tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "a node downgraded to an old driver warns".into(),
            inputs: vec![
                (
                    agent::GPU_DRIVER_INFO.name.into(),
                    info(&ok_cuda),
                    Input::Gauge { good: Some(1.0), bad: None },
                ),
                (
                    agent::GPU_DRIVER_INFO.name.into(),
                    info(&old_cuda),
                    Input::Gauge { good: None, bad: Some(1.0) },
                ),
            ],
            fired: vec![fired(&info(&old_cuda), "warning")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    out.alerts.push(a);
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut built = Built { alerts: Vec::new(), tests: Vec::new() };
    xid(ctx, &mut built);
    ecc(ctx, &mut built);
    throttling(ctx, &mut built);
    availability(ctx, &mut built);
    RuleFile {
        stem: "gpu",
        groups: vec![Group {
            name: "deepwatch-gpu".into(),
            interval_secs: ctx.eval(),
            rules: built.alerts.into_iter().map(Rule::Alert).collect(),
        }],
        tests: built.tests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_lists_every_older_version() {
        assert_eq!(older_than((12, 1)), "(0|1|2|3|4|5|6|7|8|9|10|11)\\.[0-9]+|12\\.(0)");
        assert_eq!(older_than((12, 0)), "(0|1|2|3|4|5|6|7|8|9|10|11)\\.[0-9]+");
        assert_eq!(older_than((1, 2)), "(0)\\.[0-9]+|1\\.(0|1)");
        assert_eq!(older_than((0, 0)), "^$");
    }
}
