//! Process collector tests: the real /proc for the agent itself, a scripted source for the
//! leak rate under paused time.

use super::*;
use deepwatch_core::expo::Format;

#[test]
fn the_agent_watches_itself_through_proc() {
    let c = ProcessCollector::new(&ProcessConfig::default(), Arc::new(ProcFs::default()));
    let mut sink = MetricSink::new(Format::Text004);
    c.collect(&mut sink).unwrap();
    let text = sink.render();
    let pid = std::process::id();
    let labels = format!("{{process=\"{SELF_NAME}\",pid=\"{pid}\"}}");
    assert!(text.contains(&format!("deepwatch_process_matched{{process=\"{SELF_NAME}\"}} 1")));
    for name in [
        "deepwatch_process_resident_memory_bytes",
        "deepwatch_process_cpu_seconds_total",
        "deepwatch_process_open_fds",
        "deepwatch_process_threads",
    ] {
        assert!(text.contains(&format!("{name}{labels} ")), "{name} missing\n{text}");
    }
    let rss_line = text.lines().find(|l| l.starts_with("deepwatch_process_resident")).unwrap();
    let rss: f64 = rss_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(rss > 1e6, "{rss_line}");
}

#[tokio::test]
async fn selectors_find_processes_by_pid_file_name_and_cmdline() {
    let fs = ProcFs::default();
    let me = std::process::id() as i32;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("x.pid");
    std::fs::write(&pid_file, format!("{me}\n")).unwrap();
    assert_eq!(fs.resolve(&Selector::PidFile(pid_file.clone())), vec![me]);
    std::fs::write(&pid_file, "999999999\n").unwrap();
    assert!(fs.resolve(&Selector::PidFile(pid_file)).is_empty());
    let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
    assert!(fs.resolve(&Selector::ExactName(comm.trim().to_string())).contains(&me));
    let mut child = std::process::Command::new("sleep").arg("37.123").spawn().unwrap();
    let re = Selector::Cmdline(Regex::new(r"^sleep 37\.123$").unwrap());
    // The child shows its own command line only once it has exec'd.
    let found = deepwatch_testkit::wait_for("sleep to exec", Duration::from_secs(5), || async {
        let pids = fs.resolve(&re);
        (!pids.is_empty()).then_some(pids)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(found, vec![child.id() as i32]);
}

/// A process leaking 10 MB/min, with allocator sawtooth on top.
struct Leaky {
    start: tokio::time::Instant,
}

impl ProcSource for Leaky {
    fn resolve(&self, _: &Selector) -> Vec<i32> {
        vec![42]
    }
    fn stats(&self, pid: i32) -> Option<ProcStats> {
        let t = self.start.elapsed().as_secs_f64();
        let saw = ((t / 7.0) as u64 % 5) as f64 * 3e6;
        (pid == 42).then_some(ProcStats {
            rss_bytes: 1e9 + t * 10e6 / 60.0 + saw,
            cpu_seconds: t,
            open_fds: Some(10.0),
            threads: 4.0,
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_10_mb_per_minute_leak_shows_within_5_minutes_whatever_the_scrape_interval() {
    let config = ProcessConfig { include_self: false, ..ProcessConfig::default() };
    let source = Arc::new(Leaky { start: tokio::time::Instant::now() });
    let c = Arc::new(ProcessCollector::with_targets(
        &config,
        vec![("engine".into(), Selector::Pid(42))],
        source,
    ));
    let sampler = c.spawn_sampler();
    // Nobody scrapes for 5 minutes: the background sampler alone builds the window.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let rate = c.growth_of("engine", 42).expect("a rate after 5 minutes");
    let expected = 10e6 / 60.0;
    assert!((rate - expected).abs() / expected < 0.05, "rate {rate}, expected ≈{expected}");
    let mut sink = MetricSink::new(Format::Text004);
    c.collect(&mut sink).unwrap();
    let text = sink.render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "deepwatch_process_memory_growth_bytes_per_second{process=\"engine\",pid=\"42\"}",
            )
        })
        .unwrap_or_else(|| panic!("{text}"));
    let exported: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(exported, rate);
    sampler.abort();
}

#[tokio::test(start_paused = true)]
async fn a_vanished_process_is_dropped_and_matched_goes_to_zero() {
    struct Gone;
    impl ProcSource for Gone {
        fn resolve(&self, _: &Selector) -> Vec<i32> {
            Vec::new()
        }
        fn stats(&self, _: i32) -> Option<ProcStats> {
            None
        }
    }
    let config = ProcessConfig { include_self: false, ..ProcessConfig::default() };
    let c = ProcessCollector::with_targets(
        &config,
        vec![("engine".into(), Selector::Pid(42))],
        Arc::new(Gone),
    );
    c.sample();
    let mut sink = MetricSink::new(Format::Text004);
    c.collect(&mut sink).unwrap();
    let text = sink.render();
    assert!(text.contains("deepwatch_process_matched{process=\"engine\"} 0"), "{text}");
    assert!(!text.contains("deepwatch_process_resident_memory_bytes{"), "{text}");
}

/// `agent.procfs_root`: a container reads the host's processes under a mounted /proc. A fake
/// root holding one process that does not exist here must be found and read from there.
#[test]
fn procfs_root_is_where_processes_are_read() {
    let root = tempfile::tempdir().unwrap();
    let fake_pid = 1_999_999_999;
    let dir = root.path().join(fake_pid.to_string());
    std::fs::create_dir_all(dir.join("fd")).unwrap();
    for fd in ["0", "1", "2"] {
        std::fs::write(dir.join("fd").join(fd), "").unwrap();
    }
    // This process's stat with the pid and name swapped: 52 real fields procfs can parse.
    let own = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &own[own.rfind(')').unwrap() + 1..];
    let stat = format!("{fake_pid} (fake-engine){after_comm}");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After "(comm)": state is field 3, num_threads field 20, rss field 24 (1-based, man proc).
    let threads: f64 = fields[20 - 3].parse().unwrap();
    let rss_pages: f64 = fields[24 - 3].parse().unwrap();
    std::fs::write(dir.join("stat"), stat).unwrap();
    std::fs::write(dir.join("comm"), "fake-engine\n").unwrap();
    std::fs::write(dir.join("cmdline"), "fake-engine\0--port\08000\0").unwrap();
    std::fs::write(dir.join("statm"), "100 25 0 0 0 0 0\n").unwrap();

    let host = ProcFs::with_root(root.path().to_path_buf());
    let by_name = Selector::ExactName("fake-engine".into());
    assert_eq!(host.resolve(&by_name), vec![fake_pid]);
    assert_eq!(
        host.resolve(&Selector::Cmdline(Regex::new("--port 8000").unwrap())),
        vec![fake_pid]
    );
    let stats = host.stats(fake_pid).expect("stats from the fake root");
    let page = procfs::page_size() as f64;
    assert_eq!(stats.rss_bytes, rss_pages * page);
    assert_eq!(stats.threads, threads);
    assert_eq!(stats.open_fds, Some(3.0));
    assert_eq!(host.rss_bytes(fake_pid), Some(25.0 * page));
    // The machine's own /proc knows no such process.
    assert!(ProcFs::default().resolve(&by_name).is_empty());
    assert!(ProcFs::default().stats(fake_pid).is_none());
}
