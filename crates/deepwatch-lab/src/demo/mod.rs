//! `deepwatch demo`: the whole stack on one machine, driven through one fault after another
//! while a live timeline shows what happens. It writes one `deepwatch.toml` and the generated
//! Prometheus/Alertmanager/Grafana files into a state directory, starts three simulators (blue
//! v1, green v2, a cold standby), the gateway, the agent, the analyzer (as subcommands of the
//! current executable), Prometheus and Alertmanager (Debian packages), receives every
//! notification in-process (phone webhook, WeCom stand-in, SMTP), drives load, injects the
//! faults, and stops every child on Ctrl-C, SIGTERM, an error, a panic or the end of
//! `--duration` (see `procs` for how none outlives even a SIGKILL of the demo).
//!
//! The rules generator lives in another crate, so the caller passes it in (`Generate`).

pub mod procs;
pub mod scenario;
mod setup;
pub mod sinks;
pub mod stack;
mod summary;
pub mod timeline;
pub mod watch;

pub use scenario::Fault;
pub use setup::find_tool;
pub use timeline::Event;

use crate::chaos::SimAdmin;
use crate::gameday;
use crate::load::{Dist, LoadOptions, Mode, Profile, Silent};
use deepwatch_core::api::admin::GatewayAdmin;
use deepwatch_core::config::{rules::RulesConfig, Config};
use procs::Supervisor;
use setup::{prepare_state_dir, urls_text, Signals};
use stack::{url, Ports};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use timeline::Timeline;
use tokio::time::Instant;

/// Writes the generated files of `spec`, scaled by `time_scale`, under a folder; returns how
/// many files it wrote.
pub type Generate = Box<dyn Fn(&RulesConfig, u64, &Path) -> Result<usize, String>>;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where configs, generated files, data, logs, pids and the timeline go.
    pub state_dir: PathBuf,
    /// Stop after this long (non-interactive); `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    pub faults: Vec<Fault>,
    /// Drive load through the gateway.
    pub load: bool,
    /// Requests per second of that load.
    pub rate: f64,
    /// Use ports `base..base + stack::PORT_COUNT` instead of free ones.
    pub port_base: Option<u16>,
    /// Divides the rules' intervals, `for`s and holds (the generator's `--time-scale`).
    pub time_scale: u64,
    pub warmup: Duration,
    /// How long each fault stays in force.
    pub hold: Duration,
    /// Run the analyzer (self-healing, root-cause reports, probes).
    pub analyzer: bool,
    /// The executable whose subcommands run the simulators, gateway, agent and analyzer.
    pub executable: PathBuf,
    pub prometheus: Option<PathBuf>,
    pub alertmanager: Option<PathBuf>,
    /// Run the game day's drills instead of the demo's faults (`deepwatch chaos gameday`).
    pub gameday: Option<gameday::Plan>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    MissingTool(String),
    #[error("another demo is running in {dir} (pid {pid}); stop it or pass another --state-dir")]
    Busy { dir: String, pid: u32 },
    #[error("ports {0}.. do not fit below 65536")]
    Ports(u16),
    #[error("cannot start {name}: {message}")]
    Spawn { name: String, message: String },
    #[error("{name} did not answer {url} within {secs}s; the end of its log:\n{log}")]
    NotReady { name: String, url: String, secs: u64, log: String },
    #[error("{name} stopped unexpectedly ({status}); the end of its log:\n{log}")]
    Exited { name: String, status: String, log: String },
    #[error("demo config: {0}")]
    Config(String),
    #[error("generating the Prometheus and Alertmanager files: {0}")]
    Generate(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why the demo stopped, and what happened.
#[derive(Debug)]
pub struct DemoReport {
    pub stopped_by: &'static str,
    pub events: Vec<Event>,
    /// The game day's measurements, when it ran one.
    pub gameday: Option<Vec<gameday::DrillResult>>,
}

/// What a game day leaves for measuring once the stack has stopped.
struct GamedayRun {
    spans: Vec<gameday::Span>,
    tally: Arc<gameday::Tally>,
}

/// Runs the demo until Ctrl-C/SIGTERM or `duration`; every child is stopped before it returns,
/// and also when it fails or panics.
pub async fn run(options: DemoOptions, generate: Generate) -> Result<DemoReport, DemoError> {
    let t0 = Instant::now();
    // Handlers first: a Ctrl-C during start-up must stop the children too, not kill the demo.
    let mut signals = Signals::new()?;
    let prometheus = find_tool(&["prometheus"], options.prometheus.as_deref(), "prometheus")?;
    let alertmanager = find_tool(
        &["prometheus-alertmanager", "alertmanager"],
        options.alertmanager.as_deref(),
        "prometheus-alertmanager",
    )?;
    let dir = std::path::absolute(&options.state_dir)?;
    prepare_state_dir(&dir)?;
    let ports = match options.port_base {
        Some(base) => Ports::from_base(base).ok_or(DemoError::Ports(base))?,
        None => Ports::auto()?,
    };

    let config_path = dir.join("deepwatch.toml");
    let mut text = stack::scaled_rca(
        &stack::config_text(&ports, &dir.display().to_string(), options.analyzer),
        options.time_scale,
    );
    if options.gameday.is_some() {
        text = stack::gameday_config(&text, &ports);
    }
    std::fs::write(&config_path, &text)?;
    let config = Config::from_toml_str(&text).map_err(|e| DemoError::Config(e.to_string()))?;
    config.validate().map_err(|e| DemoError::Config(e.to_string()))?;
    let deploy = dir.join("deploy");
    let written =
        generate(&config.rules, options.time_scale, &deploy).map_err(DemoError::Generate)?;

    let (timeline, printer) = Timeline::start(t0, &dir.join("timeline.jsonl"))?;
    timeline.emit(
        "stack",
        format!(
            "wrote {} and {written} generated files under {} (time scale {})",
            config_path.display(),
            deploy.display(),
            options.time_scale
        ),
        serde_json::json!({"state_dir": dir, "time_scale": options.time_scale}),
    );
    let bind = |name: &str, port: u16| {
        let name = name.to_string();
        async move {
            tokio::net::TcpListener::bind(stack::addr(port))
                .await
                .map_err(|e| DemoError::Spawn { name, message: format!("127.0.0.1:{port}: {e}") })
        }
    };
    let sinks_listener = bind("the webhook and WeCom receivers", ports.sinks).await?;
    let smtp_listener = bind("the SMTP receiver", ports.smtp).await?;
    let mut tasks = vec![
        sinks::http(sinks_listener, timeline.clone(), stack::CORP_ID.to_string()),
        sinks::smtp(smtp_listener, timeline.clone()),
    ];

    let mut sup = Supervisor::new(&dir)?;
    let mut gameday_run = None;
    let outcome = run_stack(
        &options,
        &mut signals,
        &mut sup,
        &ports,
        &dir,
        &prometheus,
        &alertmanager,
        &timeline,
        &mut tasks,
        &mut gameday_run,
    )
    .await;
    for t in &tasks {
        t.abort();
    }
    let stopped_by = match outcome {
        Ok(reason) => reason,
        Err(e) => {
            timeline.info(format!("stopping: {e}"));
            sup.shutdown().await;
            drop(timeline);
            let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
            return Err(e);
        }
    };
    timeline.info(format!("stopping ({stopped_by}): every child gets SIGTERM, then SIGKILL"));
    let pids = sup.pids();
    sup.shutdown().await;
    let left: Vec<String> = pids
        .iter()
        .filter(|(_, pid)| procs::alive(*pid))
        .map(|(n, p)| format!("{n} ({p})"))
        .collect();
    if left.is_empty() {
        timeline.info(format!("stopped {} processes; none left", pids.len()));
    } else {
        timeline.info(format!("still running: {}", left.join(", ")));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let events = timeline.events();
    drop(timeline);
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
    let gameday = match (&options.gameday, gameday_run) {
        (Some(plan), Some(done)) => Some(finish_gameday(plan, &options, &done, &events)?),
        _ => {
            summary::print(&events);
            None
        }
    };
    Ok(DemoReport { stopped_by, events, gameday })
}

/// Measures every drill, writes the report and prints it.
fn finish_gameday(
    plan: &gameday::Plan,
    options: &DemoOptions,
    done: &GamedayRun,
    events: &[Event],
) -> Result<Vec<gameday::DrillResult>, DemoError> {
    let outcomes = done.tally.outcomes();
    let results: Vec<gameday::DrillResult> = done
        .spans
        .iter()
        .map(|s| gameday::measure::measure(s, events, &outcomes, options.rate, options.time_scale))
        .collect();
    let names: Vec<&str> = plan.drills.iter().map(|d| d.name()).collect();
    let command = format!(
        "deepwatch chaos gameday --drills {} --runs {} --time-scale {}",
        names.join(","),
        plan.runs,
        options.time_scale
    );
    gameday::report::write(&plan.out, &results, options.time_scale, &command)?;
    println!("\n{}", gameday::report::markdown(&results, options.time_scale, &command));
    println!("written: {}/gameday.md and gameday.json", plan.out.display());
    Ok(results)
}

#[allow(clippy::too_many_arguments)]
async fn run_stack(
    options: &DemoOptions,
    signals: &mut Signals,
    sup: &mut Supervisor,
    ports: &Ports,
    dir: &Path,
    prometheus: &Path,
    alertmanager: &Path,
    timeline: &Timeline,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    gameday_run: &mut Option<GamedayRun>,
) -> Result<&'static str, DemoError> {
    let startup = start_children(options, sup, ports, dir, prometheus, alertmanager, timeline);
    tokio::select! {
        started = startup => started?,
        reason = signals.recv() => return Ok(reason),
    }
    let prom_url = url(ports.prometheus);
    let admin_url = url(ports.gateway_admin);
    tasks.push(tokio::spawn(watch::alerts(prom_url.clone(), timeline.clone())));
    tasks.push(tokio::spawn(watch::inhibitions(url(ports.alertmanager), timeline.clone())));
    tasks.push(tokio::spawn(watch::gateway_events(
        admin_url.clone(),
        stack::GATEWAY_TOKEN.into(),
        timeline.clone(),
    )));
    if options.analyzer {
        tasks.push(tokio::spawn(watch::reports(url(ports.analyzer), timeline.clone())));
    }
    let tally = gameday::Tally::new(timeline.clone());
    if options.load && options.gameday.is_some() {
        let load = gameday::base_load(url(ports.proxy), stack::MODEL.into(), options.rate);
        timeline.info(format!("load: {} requests/s through the gateway", options.rate));
        let progress: Arc<dyn crate::load::Progress> = tally.clone();
        tasks.push(tokio::spawn(async move {
            let _ = crate::load::run(load, progress).await;
        }));
    } else if options.load {
        let load = LoadOptions {
            target: url(ports.proxy),
            model: stack::MODEL.into(),
            mode: Mode::Open { rate: options.rate, profile: Profile::Constant },
            max_requests: u64::MAX / 2,
            duration: Duration::from_secs(7 * 86_400),
            prompt_tokens: Dist::Fixed { value: 16 },
            // Short answers keep the healthy median under the inference-latency warning (0.18 s).
            output_tokens: Dist::Fixed { value: 4 },
            timeout: Duration::from_secs(30),
            max_in_flight: 1000,
            ..LoadOptions::default()
        };
        timeline.info(format!(
            "load: {} requests/s through the gateway ({})",
            options.rate,
            url(ports.proxy)
        ));
        tasks.push(tokio::spawn(async move {
            let _ = crate::load::run(load, Arc::new(Silent)).await;
        }));
    }
    let sim_admin = |port: u16| {
        SimAdmin::new(&url(port), stack::SIM_TOKEN).map_err(|e| DemoError::Config(e.to_string()))
    };
    let targets = scenario::Targets {
        blue: sim_admin(ports.blue_admin)?,
        green: sim_admin(ports.green_admin)?,
        gateway_admin: admin_url,
        gateway_token: stack::GATEWAY_TOKEN.into(),
        prometheus: prom_url,
    };
    if let Some(plan) = &options.gameday {
        let admin = GatewayAdmin::new(
            &targets.gateway_admin,
            stack::GATEWAY_TOKEN,
            Duration::from_secs(10),
        )
        .map_err(|e| DemoError::Config(e.to_string()))?;
        let lab = gameday::Lab {
            blue: sim_admin(ports.blue_admin)?,
            green: sim_admin(ports.green_admin)?,
            gateway: admin,
            prometheus: targets.prometheus.clone(),
            state_dir: dir.to_path_buf(),
            time_scale: options.time_scale,
            gpu_leak: Arc::default(),
            load: gameday::base_load(url(ports.proxy), stack::MODEL.into(), options.rate),
            tally: tally.clone(),
            executable: options.executable.clone(),
        };
        let climb = Duration::from_secs_f64(300.0 / options.time_scale.max(1) as f64);
        tasks.push(tokio::spawn(gameday::drive_gpu_script(
            gameday::gpu_script(dir),
            lab.gpu_leak.clone(),
            climb,
        )));
        let warmup = options.warmup;
        timeline.info(format!("warming up for {}s before the first drill", warmup.as_secs()));
        let mut drills = std::pin::pin!(async {
            tokio::time::sleep(warmup).await;
            gameday::run(plan, &lab, timeline).await
        });
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                spans = &mut drills => {
                    *gameday_run = Some(GamedayRun { spans, tally });
                    return Ok("the game day is complete");
                }
                reason = signals.recv() => return Ok(reason),
                _ = tick.tick() => supervise(sup, timeline)?,
            }
        }
    }
    let schedule = scenario::Schedule {
        faults: options.faults.clone(),
        warmup: options.warmup,
        hold: options.hold,
        settle: Duration::from_secs(180),
    };

    let deadline = options.duration.map(|d| timeline.started() + d);
    let mut scenario = std::pin::pin!(scenario::run(schedule, &targets, timeline.clone()));
    let mut scenario_done = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let reason = loop {
        tokio::select! {
            _ = &mut scenario, if !scenario_done => {
                scenario_done = true;
                if deadline.is_none() {
                    timeline.info("the stack keeps running: open the URLs above; Ctrl-C stops everything");
                }
            }
            reason = signals.recv() => break reason,
            _ = tick.tick() => {
                if let Some(e) = sup.exited() {
                    scenario::revert_all(&targets).await;
                    return Err(e);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break "--duration reached";
                }
            }
        }
    };
    scenario::revert_all(&targets).await;
    Ok(reason)
}

/// Restarts children due for it (the game day's killed engines) and fails on any other exit.
fn supervise(sup: &mut Supervisor, timeline: &Timeline) -> Result<(), DemoError> {
    for (name, old, status, pid) in sup.restart_due()? {
        timeline.emit(
            "remediation",
            format!("supervisor restarted {name} (pid {old}, {status}) as pid {pid}"),
            serde_json::json!({"event": "restart", "process": name, "old_pid": old, "pid": pid}),
        );
    }
    match sup.exited() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Starts every child, waits until each answers and Prometheus scrapes them all.
async fn start_children(
    options: &DemoOptions,
    sup: &mut Supervisor,
    ports: &Ports,
    dir: &Path,
    prometheus: &Path,
    alertmanager: &Path,
    timeline: &Timeline,
) -> Result<(), DemoError> {
    let exe = options.executable.as_path();
    let config = dir.join("deepwatch.toml").display().to_string();
    let s = |v: &str| v.to_string();
    let ready = Duration::from_secs(30);
    for (name, port, admin, version, seed) in [
        ("sim-blue", ports.blue, ports.blue_admin, "v1", 1),
        ("sim-green", ports.green, ports.green_admin, "v2", 2),
        ("sim-standby", ports.standby, ports.standby_admin, "v1", 3),
    ] {
        let args = vec![
            s("sim"),
            s("--listen"),
            stack::addr(port).to_string(),
            s("--admin-listen"),
            stack::addr(admin).to_string(),
            s("--model"),
            s(stack::MODEL),
            s("--model-version"),
            s(version),
            s("--admin-token"),
            s(stack::SIM_TOKEN),
            s("--seed"),
            seed.to_string(),
        ];
        sup.spawn(name, exe, &args)?;
    }
    sup.spawn("gateway", exe, &[s("gateway"), s("--config"), config.clone()])?;
    let mut agent_args = vec![s("agent"), s("--config"), config.clone()];
    if options.gameday.is_some() {
        // Two fake GPUs whose memory the GPU-leak drill drives through this file.
        agent_args.extend([s("--fake-gpus"), s("2"), s("--fake-gpu-script")]);
        agent_args.push(crate::gameday::gpu_script(dir).display().to_string());
        crate::gameday::write_normal_gpu_script(dir);
        for sim in ["sim-blue", "sim-green", "sim-standby"] {
            // systemd's Restart=always, RestartSec=4 for the engines the drills kill.
            sup.restart_on_exit(sim, Duration::from_secs(4));
        }
    }
    sup.spawn("agent", exe, &agent_args)?;
    let deploy = dir.join("deploy");
    sup.spawn(
        "prometheus",
        prometheus,
        &[
            format!("--config.file={}", deploy.join("prometheus/prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()),
            format!("--web.listen-address={}", stack::addr(ports.prometheus)),
            s("--web.enable-lifecycle"),
            s("--storage.tsdb.retention.time=1d"),
            s("--log.level=warn"),
        ],
    )?;
    sup.spawn(
        "alertmanager",
        alertmanager,
        &[
            format!("--config.file={}", deploy.join("alertmanager/alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("alertmanager-data").display()),
            format!("--web.listen-address={}", stack::addr(ports.alertmanager)),
            s("--cluster.listen-address="),
            s("--log.level=warn"),
        ],
    )?;
    if options.analyzer {
        sup.spawn("analyzer", exe, &[s("analyze"), s("--config"), config.clone()])?;
    }
    let mut checks = vec![
        ("sim-blue", format!("{}/health", url(ports.blue))),
        ("sim-green", format!("{}/health", url(ports.green))),
        ("sim-standby", format!("{}/health", url(ports.standby))),
        ("gateway", format!("{}/healthz", url(ports.gateway_admin))),
        ("agent", format!("{}/healthz", url(ports.agent))),
        ("prometheus", format!("{}/-/ready", url(ports.prometheus))),
        ("alertmanager", format!("{}/-/ready", url(ports.alertmanager))),
    ];
    if options.analyzer {
        checks.push(("analyzer", format!("{}/healthz", url(ports.analyzer))));
    }
    for (name, check) in &checks {
        sup.wait_ready(name, check, ready).await?;
    }
    let pids: Vec<String> = sup.pids().iter().map(|(n, p)| format!("{n}={p}")).collect();
    timeline.emit(
        "stack",
        format!("stack ready: {} processes in process group {}", pids.len(), sup.pgid()),
        serde_json::json!({"pids": pids, "pgid": sup.pgid()}),
    );
    timeline.raw(urls_text(ports, dir, options.analyzer));

    match watch::targets_up(&url(ports.prometheus), Duration::from_secs(30)).await {
        Some(n) => timeline.info(format!("Prometheus scrapes all {n} targets")),
        None => {
            timeline.info("not every Prometheus target is up after 30s (see its /targets page)")
        }
    }
    Ok(())
}
