//! Test support shared by the integration tests of every crate: free loopback ports, real
//! servers from the Debian packages (Prometheus, Alertmanager, Pushgateway, node_exporter,
//! VictoriaMetrics) started in a temp dir and killed on drop, and polling helpers.
//! Only ever a dev-dependency.
#![forbid(unsafe_code)]

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
        let log = std::fs::File::create(dir.path().join(format!("{name}.log")))?;
        let child = Command::new(binary)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(Server { name: name.to_string(), addr, dir, child })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's combined stdout/stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.name)))
            .unwrap_or_default()
    }

    /// Waits until GET `path` answers 200, or panics with the server's log.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) {
        let url = format!("{}{path}", self.url());
        let client = http_client();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status} before it was ready:\n{}", self.name, self.log());
            }
            if let Ok(resp) = client.get(&url).send().await {
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

/// A reqwest client with short timeouts for test traffic.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client")
}

/// A real Prometheus from the Debian package.
pub struct Prometheus {
    pub server: Server,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML text) written as `prometheus.yml`, plus any extra
    /// files (rule files, ...) written beside it. Lifecycle API enabled for `/-/reload`.
    pub async fn start(config: &str, extra_files: &[(&str, &str)]) -> Prometheus {
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
        let args = vec![
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            "--web.enable-lifecycle".to_string(),
            "--web.enable-admin-api".to_string(),
            "--storage.tsdb.retention.time=1d".to_string(),
            "--log.level=warn".to_string(),
        ];
        let mut server = Server::spawn("prometheus", &binary, &args, addr, dir).expect("start");
        server.wait_ready("/-/ready", Duration::from_secs(30)).await;
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
        wait_for(&format!("series for {promql}"), timeout, || async {
            let result = self.query(promql).await;
            (!result.is_empty()).then_some(result)
        })
        .await
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
    async fn alertmanager_starts_with_a_minimal_config() {
        let config = "route:\n  receiver: x\nreceivers:\n  - name: x\n";
        let am = Alertmanager::start(config).await;
        assert!(am.alerts().await.is_empty());
    }
}
