//! Test support shared by the integration tests of every crate: free loopback ports, real
//! servers from the Debian packages (Prometheus, Alertmanager, Pushgateway, node_exporter,
//! VictoriaMetrics, vmalert) started in a temp dir, killed on drop and restartable on the same
//! port and data, polling helpers, and `tls` (a CA made in the test and an https front).
//! Only ever a dev-dependency.
#![forbid(unsafe_code)]

pub mod tls;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Finds a server binary: on PATH, else in /usr/bin or /usr/sbin. `None` when not installed.
pub fn find_binary(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
        }
        for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Like `find_binary`, but panics with the install hint: tests need the real servers.
pub fn require_binary(names: &[&str], package: &str) -> PathBuf {
    find_binary(names).unwrap_or_else(|| {
        panic!("{} not found; run scripts/install-deps.sh (Debian package {package})", names[0])
    })
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed (and reaped) on drop, with its working dir and log file.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    binary: PathBuf,
    args: Vec<String>,
    child: Child,
}

impl Server {
    /// Starts `binary args...` with stdout and stderr going to `<dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        binary: &Path,
        args: &[String],
        addr: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Result<Server, Error> {
        let child = start_child(name, binary, args, dir.path())?;
        Ok(Server {
            name: name.to_string(),
            addr,
            dir,
            binary: binary.to_path_buf(),
            args: args.to_vec(),
            child,
        })
    }

    /// Stops the server with SIGTERM (it may flush its data) and waits for it to exit; kills
    /// it after 10 s.
    pub async fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
    }

    /// Starts the server again after `kill` or `terminate`, with the same binary, arguments, address and
    /// working dir (so its data survives), appending to the same log.
    pub async fn restart(&mut self, ready_path: &str, timeout: Duration) {
        self.terminate().await;
        self.child = start_child(&self.name, &self.binary, &self.args, self.dir.path())
            .unwrap_or_else(|e| panic!("cannot restart {}: {e}", self.name));
        self.wait_ready(ready_path, timeout).await;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether the process has exited (a server that could not bind its port exits at once).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The server's combined stdout/stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.name)))
            .unwrap_or_default()
    }

    /// Waits until GET `path` answers 200, or panics with the server's log.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) {
        let url = format!("{}{path}", self.url());
        self.wait_ready_with(&http_client(), &url, timeout).await;
    }

    /// Waits until GET `url` with `client` answers 200 (a server behind TLS or auth), or
    /// panics with the server's log.
    pub async fn wait_ready_with(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status} before it was ready:\n{}", self.name, self.log());
            }
            if let Ok(resp) = client.get(url).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{} not ready at {url} after {timeout:?}:\n{}", self.name, self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Process id, for tests that measure or signal the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server now (tests of "upstream dies").
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_child(name: &str, binary: &Path, args: &[String], dir: &Path) -> Result<Child, Error> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?;
    let child = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    Ok(child)
}

/// A reqwest client with short timeouts for test traffic.
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a crypto provider of its own (deepwatch_core::http uses ring).
    let _ =
        rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    #[allow(clippy::disallowed_methods)] // ring was installed as the default just above
    let builder = reqwest::Client::builder();
    builder.timeout(Duration::from_secs(10)).build().expect("http client")
}

/// A real Prometheus from the Debian package.
pub struct Prometheus {
    pub server: Server,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML text) written as `prometheus.yml`, plus any extra
    /// files (rule files, ...) written beside it. Lifecycle API enabled for `/-/reload`.
    pub async fn start(config: &str, extra_files: &[(&str, &str)]) -> Prometheus {
        Prometheus::start_with_flags(config, extra_files, &[]).await
    }

    /// Like `start`, with extra command-line flags (`--web.enable-remote-write-receiver`).
    pub async fn start_with_flags(
        config: &str,
        extra_files: &[(&str, &str)],
        flags: &[&str],
    ) -> Prometheus {
        let binary = require_binary(&["prometheus"], "prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        for (name, text) in extra_files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create dir");
            }
            std::fs::write(path, text).expect("write file");
        }
        let addr = free_addr();
        let mut args = vec![
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            "--web.enable-lifecycle".to_string(),
            "--web.enable-admin-api".to_string(),
            "--storage.tsdb.retention.time=1d".to_string(),
            "--log.level=warn".to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        let mut server = Server::spawn("prometheus", &binary, &args, addr, dir).expect("start");
        server.wait_ready("/-/ready", Duration::from_secs(30)).await;
        Prometheus { server }
    }

    /// Starts Prometheus with `--web.config.file` holding `web_config` (YAML: TLS, basic auth)
    /// and returns once `client` gets 200 from `<scheme>://<addr>/-/ready`.
    pub async fn start_with_web_config(
        config: &str,
        web_config: &str,
        scheme: &str,
        client: &reqwest::Client,
    ) -> Prometheus {
        let binary = require_binary(&["prometheus"], "prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        std::fs::write(dir.path().join("web.yml"), web_config).expect("write web config");
        let addr = free_addr();
        let args = vec![
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--web.config.file={}", dir.path().join("web.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            "--log.level=warn".to_string(),
        ];
        let mut server = Server::spawn("prometheus", &binary, &args, addr, dir).expect("start");
        let ready = format!("{scheme}://{addr}/-/ready");
        server.wait_ready_with(client, &ready, Duration::from_secs(30)).await;
        Prometheus { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Runs an instant query and returns `data.result` (panics on an API error).
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let resp: serde_json::Value = http_client()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("prometheus query")
            .json()
            .await
            .expect("prometheus json");
        assert_eq!(resp["status"], "success", "query {promql} failed: {resp}");
        resp["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `promql` until it returns at least one series, or panics after `timeout`.
    pub async fn wait_for_series(&self, promql: &str, timeout: Duration) -> Vec<serde_json::Value> {
        wait_for_series(&self.url(), promql, timeout).await
    }

    /// `GET /api/v1/targets` `activeTargets`.
    pub async fn targets(&self) -> Vec<serde_json::Value> {
        let resp: serde_json::Value = http_client()
            .get(format!("{}/api/v1/targets", self.url()))
            .send()
            .await
            .expect("targets")
            .json()
            .await
            .expect("targets json");
        resp["data"]["activeTargets"].as_array().cloned().unwrap_or_default()
    }
}

/// Runs an instant query against any Prometheus-compatible API at `base` and returns
/// `data.result` (panics on an API error).
pub async fn query(base: &str, promql: &str) -> Vec<serde_json::Value> {
    let resp: serde_json::Value = http_client()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json");
    assert_eq!(resp["status"], "success", "query {promql} at {base} failed: {resp}");
    resp["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Polls `promql` at `base` until it returns at least one series, or panics after `timeout`.
pub async fn wait_for_series(
    base: &str,
    promql: &str,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    wait_for(&format!("series for {promql} at {base}"), timeout, || async {
        let result = query(base, promql).await;
        (!result.is_empty()).then_some(result)
    })
    .await
}

/// A single-node VictoriaMetrics from the Debian package (`victoria-metrics`): accepts
/// Prometheus remote_write at `/api/v1/write` and answers the Prometheus query API. Started
/// with no query latency offset and no result cache, so what was just written is queryable.
pub struct VictoriaMetrics {
    pub server: Server,
}

impl VictoriaMetrics {
    pub async fn start() -> VictoriaMetrics {
        let binary = require_binary(&["victoria-metrics"], "victoria-metrics");
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_addr();
        let args = vec![
            format!("-httpListenAddr={addr}"),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            "-retentionPeriod=1d".to_string(),
            "-search.latencyOffset=0s".to_string(),
            "-search.disableCache".to_string(),
            "-loggerLevel=ERROR".to_string(),
        ];
        let mut server =
            Server::spawn("victoria-metrics", &binary, &args, addr, dir).expect("start");
        server.wait_ready("/health", Duration::from_secs(30)).await;
        VictoriaMetrics { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The remote_write endpoint.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// Kills and restarts it on the same port and data dir (a receiver outage).
    pub async fn restart(&mut self) {
        self.server.restart("/health", Duration::from_secs(30)).await;
    }

    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        query(&self.url(), promql).await
    }

    /// Every raw sample of the series `selector` matches, from `/api/v1/export` (one JSON line
    /// per series: metric, values, timestamps in ms).
    pub async fn export(&self, selector: &str) -> Vec<serde_json::Value> {
        let text = http_client()
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("export")
            .text()
            .await
            .expect("export body");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("export line is JSON"))
            .collect()
    }
}

/// vmalert from the `victoria-metrics` package: evaluates Prometheus rule files against a
/// Prometheus-compatible API (`datasource`) and sends alerts to Alertmanager.
pub struct Vmalert {
    pub server: Server,
}

impl Vmalert {
    /// `rule_files`: (name, text) written into its dir; `flags` are added as given.
    pub async fn start(
        datasource: &str,
        alertmanager: &str,
        rule_files: &[(&str, &str)],
        flags: &[&str],
    ) -> Vmalert {
        let binary = require_binary(&["vmalert"], "victoria-metrics");
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_addr();
        let mut args = vec![
            format!("-httpListenAddr={addr}"),
            format!("-datasource.url={datasource}"),
            format!("-notifier.url={alertmanager}"),
            "-loggerLevel=ERROR".to_string(),
        ];
        for (name, text) in rule_files {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write rule file");
            args.push(format!("-rule={}", path.display()));
        }
        args.extend(flags.iter().map(|f| f.to_string()));
        let mut server = Server::spawn("vmalert", &binary, &args, addr, dir).expect("start");
        server.wait_ready("/health", Duration::from_secs(30)).await;
        Vmalert { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `GET /api/v1/alerts` `data.alerts` (its Prometheus-compatible alerts API).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let resp: serde_json::Value = http_client()
            .get(format!("{}/api/v1/alerts", self.url()))
            .send()
            .await
            .expect("vmalert alerts")
            .json()
            .await
            .expect("vmalert alerts json");
        resp["data"]["alerts"].as_array().cloned().unwrap_or_default()
    }
}

/// A real Alertmanager from the Debian package (`prometheus-alertmanager`).
pub struct Alertmanager {
    pub server: Server,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` (YAML text); clustering is off.
    pub async fn start(config: &str) -> Alertmanager {
        let binary =
            require_binary(&["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("alertmanager.yml"), config).expect("write config");
        let addr = free_addr();
        let args = vec![
            format!("--config.file={}", dir.path().join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            "--cluster.listen-address=".to_string(),
            "--log.level=warn".to_string(),
        ];
        let mut server = Server::spawn("alertmanager", &binary, &args, addr, dir).expect("start");
        server.wait_ready("/-/ready", Duration::from_secs(30)).await;
        Alertmanager { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `GET /api/v2/alerts`.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let resp: serde_json::Value = http_client()
            .get(format!("{}/api/v2/alerts", self.url()))
            .send()
            .await
            .expect("alerts")
            .json()
            .await
            .expect("alerts json");
        resp.as_array().cloned().unwrap_or_default()
    }
}

/// A real Pushgateway from the Debian package.
pub struct Pushgateway {
    pub server: Server,
}

impl Pushgateway {
    pub async fn start() -> Pushgateway {
        let binary =
            require_binary(&["prometheus-pushgateway", "pushgateway"], "prometheus-pushgateway");
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_addr();
        let args = vec![format!("--web.listen-address={addr}"), "--log.level=warn".to_string()];
        let mut server = Server::spawn("pushgateway", &binary, &args, addr, dir).expect("start");
        server.wait_ready("/-/ready", Duration::from_secs(30)).await;
        Pushgateway { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// Runs a command-line tool (promtool, amtool) and returns (success, stdout+stderr).
pub fn run_tool(binary: &Path, args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(binary)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prometheus_starts_and_answers_queries() {
        let config = "global:\n  scrape_interval: 1s\nscrape_configs: []\n";
        let prom = Prometheus::start(config, &[]).await;
        let result = prom.query("vector(42)").await;
        assert_eq!(result[0]["value"][1], "42");
    }

    #[tokio::test]
    async fn victoria_metrics_restarts_with_its_data() {
        let mut vm = VictoriaMetrics::start().await;
        let line = "up_test{job=\"t\"} 7\n";
        let resp = http_client()
            .post(format!("{}/api/v1/import/prometheus", vm.url()))
            .body(line)
            .send()
            .await
            .expect("import");
        assert!(resp.status().is_success());
        wait_for_series(&vm.url(), "up_test", Duration::from_secs(10)).await;
        vm.server.terminate().await;
        assert!(http_client().get(format!("{}/health", vm.url())).send().await.is_err());
        vm.restart().await;
        let result = wait_for_series(&vm.url(), "up_test", Duration::from_secs(10)).await;
        assert_eq!(result[0]["value"][1], "7");
    }

    #[tokio::test]
    async fn alertmanager_starts_with_a_minimal_config() {
        let config = "route:\n  receiver: x\nreceivers:\n  - name: x\n";
        let am = Alertmanager::start(config).await;
        assert!(am.alerts().await.is_empty());
    }
}
