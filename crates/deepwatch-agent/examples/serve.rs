//! The agent alone, for benchmarks and GPU comparisons on machines where the full `deepwatch`
//! binary is not built: `serve [--config FILE] [--listen ADDR]`, the same behaviour as
//! `deepwatch agent`. Logs go to stderr (`RUST_LOG` filters).

use deepwatch_agent::Agent;
use deepwatch_core::config::Config;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (mut config_path, mut listen) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_path = args.next(),
            "--listen" => listen = args.next(),
            other => {
                eprintln!(
                    "unknown argument {other:?}; usage: serve [--config FILE] [--listen ADDR]"
                );
                return std::process::ExitCode::from(2);
            }
        }
    }
    let config = match config_path {
        Some(p) => match Config::load(std::path::Path::new(&p)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    let mut agent_config = config.agent;
    if let Some(l) = listen {
        agent_config.listen = l;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = runtime.map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(async {
            let agent = Agent::start(&agent_config).map_err(|e| e.to_string())?;
            let listener = Agent::bind(&agent_config.listen).await.map_err(|e| e.to_string())?;
            tracing::info!(listen = %agent_config.listen, "agent serving");
            agent
                .serve(listener, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| e.to_string())
        })
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
