//! The real `deepwatch` binary's subcommands as child processes (killed on drop, logs kept
//! for failure messages).

use deepwatch_testkit::Server;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_deepwatch"))
}

/// Starts `deepwatch <args>` and waits until `http://<ready_addr><ready_path>` answers 200.
pub async fn deepwatch(
    name: &str,
    args: &[String],
    ready_addr: SocketAddr,
    ready_path: &str,
) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::spawn(name, binary(), args, ready_addr, dir).expect("spawn deepwatch");
    server.wait_ready(ready_path, Duration::from_secs(30)).await;
    server
}

/// Owned strings from string slices, for argument lists.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A `deepwatch sim` serving `model` version v1, its admin API behind `token`, ready on /health.
pub async fn sim(
    name: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    model: &str,
    token: &str,
    seed: u64,
) -> Server {
    let a = args(&[
        "sim",
        "--listen",
        &listen.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--model",
        model,
        "--model-version",
        "v1",
        "--admin-token",
        token,
        "--seed",
        &seed.to_string(),
    ]);
    deepwatch(name, &a, listen, "/health").await
}
