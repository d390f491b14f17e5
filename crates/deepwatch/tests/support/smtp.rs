//! A local SMTP server: Debian's python3-aiosmtpd with its Mailbox handler, storing every mail
//! Alertmanager sends in a Maildir the test reads.

use deepwatch_testkit::{free_addr, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Smtp {
    pub server: Server,
    maildir: PathBuf,
}

/// One stored mail, raw (headers and body as sent).
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
}

impl Mail {
    /// First value of a header (unfolded), case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\n\n").next().unwrap_or_default().replace("\r\n", "\n");
        let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// `Some` once an SMTP server greets (`220 ...`) on `addr`.
async fn greeting(addr: std::net::SocketAddr) -> Option<()> {
    use tokio::io::AsyncReadExt;
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await.ok()?.ok()?;
    buf[..n].starts_with(b"220").then_some(())
}

impl Smtp {
    pub async fn start() -> Smtp {
        // Debian's interpreter, which has the package; a python3 earlier on PATH may not.
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.is_file(),
            "/usr/bin/python3 not found; run scripts/install-deps.sh (python3-aiosmtpd)"
        );
        // A port from `free_addr` can be taken by another test's process before aiosmtpd binds
        // it: aiosmtpd then exits, and a plain connect would reach the other process. Only
        // an SMTP greeting from a live aiosmtpd counts; otherwise try another port.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let maildir = dir.path().join("maildir");
            for sub in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
            }
            let addr = free_addr();
            let args = vec![
                "-m".to_string(),
                "aiosmtpd".to_string(),
                "-n".to_string(),
                "-l".to_string(),
                addr.to_string(),
                "-c".to_string(),
                "aiosmtpd.handlers.Mailbox".to_string(),
                maildir.display().to_string(),
            ];
            let mut server =
                Server::spawn("smtp", python, &args, addr, dir).expect("start aiosmtpd");
            let up = super::poll(Duration::from_secs(20), || async { greeting(addr).await }).await;
            if up.is_some() && !server.has_exited() {
                return Smtp { server, maildir };
            }
            failures.push(format!("{addr}: {}", server.log()));
        }
        panic!("aiosmtpd did not greet on any of 5 ports:\n{}", failures.join("\n"));
    }

    /// `host:port` for Alertmanager's `smarthost`.
    pub fn smarthost(&self) -> String {
        self.server.addr.to_string()
    }

    /// aiosmtpd's output so far, for failure messages.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Every mail delivered so far.
    pub fn mails(&self) -> Vec<Mail> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else { continue };
            for e in entries.flatten() {
                if let Ok(raw) = std::fs::read_to_string(e.path()) {
                    out.push(Mail { raw });
                }
            }
        }
        out
    }
}
