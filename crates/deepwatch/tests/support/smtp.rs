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

impl Smtp {
    pub async fn start() -> Smtp {
        // Debian's interpreter, which has the package; a python3 earlier on PATH may not.
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.is_file(),
            "/usr/bin/python3 not found; run scripts/install-deps.sh (python3-aiosmtpd)"
        );
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
        let server = Server::spawn("smtp", python, &args, addr, dir).expect("start aiosmtpd");
        let smtp = Smtp { server, maildir };
        let up = super::poll(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        assert!(up.is_some(), "aiosmtpd did not accept connections:\n{}", smtp.server.log());
        smtp
    }

    /// `host:port` for Alertmanager's `smarthost`.
    pub fn smarthost(&self) -> String {
        self.server.addr.to_string()
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
