//! A suggested reproduction of a report's top candidate: the `deepwatch chaos scenario` that
//! injects the suspected cause into a lab simulator with the observed figures, as argv and as
//! a POSIX shell command.

use super::rank::{Direction, RankedCandidate};
use deepwatch_core::config::analyzer::RcaConfig;
use serde::{Deserialize, Serialize};

/// A command that reproduces the suspected cause in a lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reproduction {
    /// The command for a POSIX shell (`argv` quoted and joined).
    pub command: String,
    /// The same command as program arguments, `deepwatch` first.
    pub argv: Vec<String>,
    pub why: String,
}

/// Candidates the lab can reproduce, each with the `deepwatch chaos scenario` it maps to.
pub const REPRODUCIBLE: &[(&str, &str)] = &[
    ("engine_ttft_p90", "latency-spike"),
    ("engine_e2e_p90", "latency-spike"),
    ("upstream_error_ratio", "error-burst"),
    ("process_rss", "memory-leak"),
    ("gpu_memory_used", "memory-leak"),
    ("request_rate", "surge"),
    ("gpu_utilization", "surge"),
    ("engine_requests_waiting", "surge"),
    ("engine_kv_cache_usage", "surge"),
    ("engine_up", "outage"),
    ("upstream_up", "outage"),
    ("engine_scrape_errors", "outage"),
    ("process_up", "outage"),
    ("process_restarts", "outage"),
];

/// A lab run that injects the suspected cause: `deepwatch chaos scenario` against a
/// simulator at the lab's default admin address (`[sim] admin_listen`), with load through the
/// gateway at its default address, so the monitoring sees the incident again. The simulator
/// admin token comes from `DEEPWATCH_SIM_ADMIN_TOKEN`, as `chaos` reads it.
pub fn reproduce(
    top: &RankedCandidate,
    onset: f64,
    at: f64,
    config: &RcaConfig,
) -> Option<Reproduction> {
    let (_, scenario) = REPRODUCIBLE.iter().find(|(name, _)| *name == top.name)?;
    let minutes = ((at + config.after.as_secs_f64() - onset) / 60.0).ceil().max(5.0);
    let delta = top.peak_value - top.pre_median;
    let sim_admin =
        format!("http://{}", deepwatch_core::config::sim::SimConfig::default().admin_listen);
    let gateway = format!(
        "http://{}",
        deepwatch_core::config::gateway::DEFAULT_LISTEN.replace("0.0.0.0", "127.0.0.1")
    );
    // Base rate of the load: the pool's own rate before the onset when that is the candidate.
    let surge_of_requests = top.name == "request_rate" && top.pre_median > 0.0;
    let rate = if surge_of_requests { top.pre_median } else { 5.0 };
    let who = |label: &str| match top.label(label) {
        "" => String::new(),
        v => format!(" ({label} {v})"),
    };
    let flag = |name: &str, value: String| vec![name.to_string(), value];
    let (fault, what): (Vec<String>, String) = match *scenario {
        "latency-spike" => (
            [
                flag("--ttft-ms", format!("{:.0}", (delta * 1000.0).max(1.0))),
                flag("--per-token-ms", "0".into()),
            ]
            .concat(),
            format!(
                "adds the observed extra latency ({delta:.3} s) to the first token of a simulator standing in for the engine{}",
                who("engine")
            ),
        ),
        "error-burst" => (
            flag("--error-rate", format!("{:.2}", top.peak_value.clamp(0.01, 1.0))),
            format!(
                "makes a simulator standing in for the upstream{} fail at the observed ratio",
                who("upstream")
            ),
        ),
        "memory-leak" => {
            // The growth observed from the candidate's own onset to the incident.
            let grew_for_min = (at - top.onset.unwrap_or(onset)).max(60.0) / 60.0;
            let mb_per_min = delta / 1e6 / grew_for_min;
            (
                [flag("--mb-per-min", format!("{:.1}", mb_per_min.max(1.0))), vec!["--release".into()]]
                    .concat(),
                format!(
                    "leaks memory at about the observed rate in a simulator standing in for{}",
                    who(if top.name == "process_rss" { "process" } else { "gpu" })
                ),
            )
        }
        "outage" => (
            Vec::new(),
            format!(
                "takes a simulator standing in for the engine{}{} down (connections refused)",
                who("engine"),
                who("upstream")
            ),
        ),
        _ => {
            let factor = if surge_of_requests { top.peak_value / top.pre_median } else { 2.0 };
            (
                flag("--factor", format!("{:.1}", factor.max(1.1))),
                "replays the surge through the gateway (saturation follows from load in the lab)"
                    .to_string(),
            )
        }
    };
    let mut argv: Vec<String> =
        ["deepwatch", "chaos", "scenario", scenario].iter().map(|s| s.to_string()).collect();
    if *scenario != "surge" {
        argv.extend(flag("--sim-admin", sim_admin.clone()));
    }
    argv.extend(fault);
    argv.extend(flag("--for", format!("{minutes}m")));
    argv.extend(flag("--target", gateway.clone()));
    argv.extend(flag("--rate", format!("{rate:.1}")));
    if !top.label("model").is_empty() {
        argv.extend(flag("--model", top.label("model").to_string()));
    }
    let why = if *scenario == "surge" {
        format!("{what}; load goes to the gateway at {gateway}")
    } else {
        format!(
            "{what}; needs a lab simulator (`deepwatch sim`, admin API {sim_admin}, admin token in $DEEPWATCH_SIM_ADMIN_TOKEN) behind the gateway at {gateway}, which carries the load"
        )
    };
    Some(Reproduction { command: shell_join(&argv), argv, why })
}

/// Words joined for a POSIX shell: a word with anything but `[A-Za-z0-9_./:=@%+,-]` is
/// single-quoted.
pub fn shell_join(argv: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(safe) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One reproduction per reproducible candidate kind, from typical figures: for tests that
/// check every suggestion against the real command-line parser.
pub fn reproduction_examples() -> Vec<Reproduction> {
    let config = RcaConfig::default();
    let at = 1_700_000_000.0;
    let labels: crate::prom::Labels = [
        ("model", "deepseek-r1"),
        ("pool", "blue"),
        ("engine", "vllm-0"),
        ("upstream", "http://10.0.0.11:8000"),
        ("instance", "gpu-node-1:9464"),
        ("process", "vllm"),
        ("gpu", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    REPRODUCIBLE
        .iter()
        .filter_map(|(name, _)| {
            let (pre_median, peak_value) = match *name {
                "engine_ttft_p90" | "engine_e2e_p90" => (0.2, 1.4),
                "upstream_error_ratio" => (0.01, 0.3),
                "process_rss" | "gpu_memory_used" => (4.0e9, 9.0e9),
                "request_rate" => (4.0, 12.0),
                "engine_requests_waiting" => (0.0, 40.0),
                "engine_up" | "upstream_up" | "process_up" => (1.0, 0.0),
                "engine_scrape_errors" => (0.0, 1.0),
                "process_restarts" => (0.0, 1.0),
                _ => (0.5, 0.99),
            };
            let candidate = RankedCandidate {
                rank: 1,
                name: name.to_string(),
                query: String::new(),
                role: super::candidates::Role::Component,
                labels: labels.clone(),
                score: 1.0,
                max_z: 12.0,
                direction: Direction::Up,
                onset: Some(at - 300.0),
                pre_median,
                sigma: 1.0,
                peak_value,
                persistence: 1.0,
            };
            reproduce(&candidate, at - 300.0, at, &config)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(r: &'a Reproduction, flag: &str) -> Option<&'a str> {
        let i = r.argv.iter().position(|a| a == flag)?;
        r.argv.get(i + 1).map(String::as_str)
    }

    #[test]
    fn each_reproducible_kind_suggests_its_chaos_scenario_with_the_observed_figures() {
        let examples = reproduction_examples();
        assert_eq!(examples.len(), REPRODUCIBLE.len());
        for (r, (name, scenario)) in examples.iter().zip(REPRODUCIBLE) {
            assert_eq!(r.argv[..4], ["deepwatch", "chaos", "scenario", scenario], "{name}");
            assert_eq!(r.command, shell_join(&r.argv));
            // From the onset, 5 minutes before the alert, to the end of the 10 minutes after it.
            assert_eq!(value(r, "--for"), Some("15m"), "{name}");
            assert_eq!(value(r, "--target"), Some("http://127.0.0.1:8080"), "{name}");
            assert_eq!(value(r, "--model"), Some("deepseek-r1"), "{name}");
            let sim = value(r, "--sim-admin");
            assert_eq!(sim.is_some(), *scenario != "surge", "{name}: {}", r.command);
        }
        let by_name = |n: &str| &examples[REPRODUCIBLE.iter().position(|(x, _)| *x == n).unwrap()];
        // TTFT 0.2 s -> 1.4 s: 1200 ms more to the first token.
        assert_eq!(value(by_name("engine_ttft_p90"), "--ttft-ms"), Some("1200"));
        assert!(by_name("engine_ttft_p90").why.contains("engine vllm-0"));
        assert_eq!(value(by_name("upstream_error_ratio"), "--error-rate"), Some("0.30"));
        // 5 GB more over the 5 minutes from its onset to the alert: 1000 MB/min.
        assert_eq!(value(by_name("process_rss"), "--mb-per-min"), Some("1000.0"));
        // 4 -> 12 requests/s: 3 times the pool's own rate.
        let surge = by_name("request_rate");
        assert_eq!((value(surge, "--rate"), value(surge, "--factor")), (Some("4.0"), Some("3.0")));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        let argv: Vec<String> =
            ["deepwatch", "--x", "a b", "it's", "http://h:1/p?q=1"].map(String::from).to_vec();
        assert_eq!(shell_join(&argv), r"deepwatch --x 'a b' 'it'\''s' 'http://h:1/p?q=1'");
    }
}
