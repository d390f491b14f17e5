//! The real gateway binary started with a soft open-file limit of 1,024 (`prlimit`, as many
//! hosts' defaults): it raises the soft limit to the hard one, exports both, and with 1,500 idle
//! client connections open a new request is still answered at once.

use crate::support::procs::{args, binary, sim};
use deepwatch_testkit::{free_addr, Server};
use std::time::Duration;

const HARD: u64 = 8192;

#[tokio::test]
async fn a_gateway_started_with_1024_open_files_raises_it_and_serves_past_it() {
    let (up, up_admin) = (free_addr(), free_addr());
    let _sim = sim("sim", up, up_admin, "m", "limits-token", 3).await;
    let (proxy, admin) = (free_addr(), free_addr());
    let nofile = format!("--nofile=1024:{HARD}");
    let deepwatch = binary().to_str().unwrap().to_string();
    let a = args(&[
        &nofile,
        &deepwatch,
        "gateway",
        "--listen",
        &proxy.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--upstream",
        &format!("http://{up}"),
    ]);
    let prlimit = deepwatch_testkit::require_binary(&["prlimit"], "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Server::spawn("gateway", &prlimit, &a, admin, dir).unwrap();
    gw.wait_ready("/healthz", Duration::from_secs(30)).await;

    let metrics =
        reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    let value = |kind: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!("deepwatch_gateway_open_files_limit{{kind=\"{kind}\"}}"))
            })
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().unwrap())
    };
    assert_eq!(value("soft"), Some(HARD as f64), "{metrics}");
    assert_eq!(value("hard"), Some(HARD as f64), "{metrics}");

    // This test process holds the other ends.
    deepwatch_gateway::limits::raise_open_files();
    let mut idle = Vec::new();
    for _ in 0..1500 {
        idle.push(tokio::net::TcpStream::connect(proxy).await.unwrap());
    }
    let c = deepwatch_core::http::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let body = serde_json::json!({"model": "m", "max_tokens": 4,
                                  "messages": [{"role": "user", "content": "hi"}]});
    let resp = c.post(format!("http://{proxy}/v1/chat/completions")).json(&body).send().await;
    let resp = resp.expect("a request past 1,024 open connections hung");
    assert_eq!(resp.status(), 200);
    drop(idle);
}
