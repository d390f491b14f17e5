//! `deepwatch gateway`: the OpenAI-compatible streaming gateway. With `--config FILE` it reads
//! the `[gateway]` section; without one, `--upstream URL` (repeatable) and `--standby URL`
//! build one primary and one standby pool with defaults. Flags override the file.

use anyhow::Context as _;
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::gateway::{first_token_deadline, GatewayConfig, PoolConfig};
use deepwatch_core::config::{Config, Path, Problems};
use deepwatch_gateway::Gateway;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// deepwatch.toml to read the [gateway] section from.
    #[arg(long, short, value_name = "FILE", env = "DEEPWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Proxy address [default: gateway.listen, 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Admin API and /metrics address [default: gateway.admin_listen, 127.0.0.1:9845]
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Bearer token of the admin API (overrides gateway.admin_token).
    #[arg(long, value_name = "TOKEN", env = "DEEPWATCH_GATEWAY_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Upstream of the primary pool (repeatable); replaces the configured pools.
    #[arg(long, value_name = "URL")]
    upstream: Vec<String>,
    /// Upstream of the standby pool, used when every primary upstream is down (repeatable).
    #[arg(long, value_name = "URL")]
    standby: Vec<String>,
    /// Proxy worker threads, each with its own event loop [default: gateway.workers, 0 = one per core]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// model_version label of the quick-start pools.
    #[arg(long, value_name = "V", default_value = "unknown")]
    model_version: String,
}

impl Args {
    fn into_config(self) -> anyhow::Result<GatewayConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let all = Config::load(path)?;
                let mut gateway = all.gateway;
                // The first-token deadline follows the TTFT SLO the rules alert on.
                gateway.first_token_timeout.get_or_insert_with(|| {
                    first_token_deadline(all.rules.thresholds.ttft.critical)
                });
                gateway
            }
            None => GatewayConfig::default(),
        };
        let mut problems = Problems::default();
        if let Some(v) = self.listen {
            problems.socket_addr(&Path::root("--listen"), &v);
            c.listen = v;
        }
        if let Some(v) = self.admin_listen {
            problems.socket_addr(&Path::root("--admin-listen"), &v);
            c.admin_listen = v;
        }
        if let Some(v) = self.admin_token {
            c.admin_token = v;
        }
        if let Some(v) = self.workers {
            c.workers = v;
        }
        if !self.standby.is_empty() && self.upstream.is_empty() {
            problems.push(&Path::root("--standby"), "needs at least one --upstream");
        }
        if !self.upstream.is_empty() {
            for (i, u) in self.upstream.iter().enumerate() {
                problems.http_url(&Path::root("--upstream").index(i), u);
            }
            for (i, u) in self.standby.iter().enumerate() {
                problems.http_url(&Path::root("--standby").index(i), u);
            }
            c.pools = vec![PoolConfig {
                name: "primary".into(),
                model_version: self.model_version.clone(),
                upstreams: self.upstream,
                ..PoolConfig::default()
            }];
            if !self.standby.is_empty() {
                c.pools.push(PoolConfig {
                    name: "standby".into(),
                    priority: 1,
                    model_version: self.model_version,
                    upstreams: self.standby,
                    ..PoolConfig::default()
                });
            }
        }
        problems.into_result()?;
        if c.pools.is_empty() {
            anyhow::bail!("no upstream: pass --upstream URL or configure [[gateway.pools]]");
        }
        Ok(c)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = args.clone().into_config()?;
    if cfg.admin_token.is_empty() {
        tracing::warn!(
            "no admin token: the admin API is disabled (only /metrics and /healthz answer)"
        );
    }
    super::block_on(async move {
        let gateway = Gateway::start(cfg, Arc::new(TokioClock::new()))
            .await
            .context("starting the gateway")?;
        tracing::info!(proxy = %gateway.proxy_addr(), admin = %gateway.admin_addr(), "gateway ready");
        let stop = super::shutdown_signal();
        tokio::pin!(stop);
        let mut hup = Hangup::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = hup.next() => {
                    gateway.reopen_logs();
                    reload(&gateway, &args)
                }
            }
        }
        tracing::info!("gateway stopping");
        gateway.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGHUP: re-reads the config file and applies what can change at run time.
fn reload(gateway: &Gateway, args: &Args) {
    if args.config.is_none() {
        tracing::warn!("SIGHUP ignored: the gateway runs without --config");
        return;
    }
    match args.clone().into_config() {
        Err(e) => {
            let why = format!("{e:#}");
            tracing::error!(error = %why, "config reload refused");
            gateway.reload_refused(&why);
        }
        Ok(cfg) => match gateway.reload(&cfg) {
            Ok(report) => {
                tracing::info!(applied = ?report.applied, needs_restart = ?report.needs_restart, "config reloaded")
            }
            Err(problems) => tracing::error!(%problems, "config reload refused"),
        },
    }
}

/// SIGHUP, registered once so no signal between two reloads is lost.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Self {
        Hangup {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Completes on the next SIGHUP (never where there is none).
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}
