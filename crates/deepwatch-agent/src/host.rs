//! The host collector: CPU seconds by mode, load, pressure stall information, memory,
//! filesystems, disk I/O and network counters, read from procfs at every scrape. The root of
//! /proc is a parameter so tests can point it at a fixture tree.

use crate::collector::{CollectError, Collector};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::config::agent::HostConfig;
use deepwatch_core::expo::MetricSink;
use parking_lot::Mutex;
use procfs::{FromRead, FromReadSI};
use regex::Regex;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Sectors in /proc/diskstats are always 512 bytes, whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

pub struct HostCollector {
    proc_root: PathBuf,
    ticks_per_second: f64,
    fs_types_exclude: Option<Regex>,
    mountpoints_exclude: Option<Regex>,
    disks_exclude: Option<Regex>,
    interfaces_exclude: Option<Regex>,
    /// Network mounts whose statvfs has not returned yet (a dead NFS server): skipped until
    /// their helper thread comes back, so one dead mount never hangs a scrape.
    stuck_mounts: Arc<Mutex<HashSet<String>>>,
}

/// Filesystems whose statvfs can block for as long as a remote server is unreachable.
const NETWORK_FS: &[&str] =
    &["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "9p", "afs"];
const NETWORK_STATFS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn optional_regex(re: &str) -> Option<Regex> {
    if re.is_empty() {
        None
    } else {
        Regex::new(re).ok()
    }
}

fn excluded(re: &Option<Regex>, value: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(value))
}

impl HostCollector {
    pub fn new(config: &HostConfig) -> Self {
        HostCollector::with_proc_root(config, PathBuf::from("/proc"))
    }

    pub fn with_proc_root(config: &HostConfig, proc_root: PathBuf) -> Self {
        HostCollector {
            proc_root,
            ticks_per_second: procfs::ticks_per_second() as f64,
            fs_types_exclude: optional_regex(&config.filesystem_types_exclude),
            mountpoints_exclude: optional_regex(&config.mountpoints_exclude),
            disks_exclude: optional_regex(&config.disk_devices_exclude),
            interfaces_exclude: optional_regex(&config.interfaces_exclude),
            stuck_mounts: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.proc_root.join(name)
    }

    fn read<T: FromRead>(&self, name: &str) -> Result<T, CollectError> {
        T::from_file(self.file(name)).map_err(|e| CollectError::failed(name, e))
    }

    fn cpu(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let stat = procfs::KernelStats::from_file(self.file("stat"), procfs::current_system_info())
            .map_err(|e| CollectError::failed("stat", e))?;
        let t = &stat.total;
        let tps = self.ticks_per_second;
        let modes: [(&str, Option<u64>); 8] = [
            ("user", Some(t.user)),
            ("nice", Some(t.nice)),
            ("system", Some(t.system)),
            ("idle", Some(t.idle)),
            ("iowait", t.iowait),
            ("irq", t.irq),
            ("softirq", t.softirq),
            ("steal", t.steal),
        ];
        for (mode, ticks) in modes {
            if let Some(ticks) = ticks {
                sink.counter(&cat::HOST_CPU_SECONDS, &[mode], ticks as f64 / tps);
            }
        }
        sink.gauge(&cat::HOST_CPU_COUNT, &[], stat.cpu_time.len() as f64);
        Ok(())
    }

    fn load(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let load: procfs::LoadAverage = self.read("loadavg")?;
        sink.gauge(&cat::HOST_LOAD, &["1m"], load.one as f64);
        sink.gauge(&cat::HOST_LOAD, &["5m"], load.five as f64);
        sink.gauge(&cat::HOST_LOAD, &["15m"], load.fifteen as f64);
        Ok(())
    }

    /// PSI needs a 4.20+ kernel built with it; a missing file is not an error.
    fn pressure(&self, sink: &mut MetricSink) {
        let us = 1e-6;
        if let Ok(p) = self.read::<procfs::CpuPressure>("pressure/cpu") {
            sink.counter(&cat::HOST_PRESSURE, &["cpu", "some"], p.some.total as f64 * us);
            sink.counter(&cat::HOST_PRESSURE, &["cpu", "full"], p.full.total as f64 * us);
        }
        if let Ok(p) = self.read::<procfs::MemoryPressure>("pressure/memory") {
            sink.counter(&cat::HOST_PRESSURE, &["memory", "some"], p.some.total as f64 * us);
            sink.counter(&cat::HOST_PRESSURE, &["memory", "full"], p.full.total as f64 * us);
        }
        if let Ok(p) = self.read::<procfs::IoPressure>("pressure/io") {
            sink.counter(&cat::HOST_PRESSURE, &["io", "some"], p.some.total as f64 * us);
            sink.counter(&cat::HOST_PRESSURE, &["io", "full"], p.full.total as f64 * us);
        }
    }

    fn memory(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(self.file("meminfo"))
            .map_err(|e| CollectError::failed("meminfo", e))?;
        let m = parse_meminfo(&text);
        let field = |k: &str| m.get(k).copied();
        let total =
            field("MemTotal").ok_or_else(|| CollectError::failed("meminfo", "no MemTotal"))?;
        let free = field("MemFree").unwrap_or(0.0);
        sink.gauge(&cat::HOST_MEMORY_TOTAL, &[], total);
        sink.gauge(&cat::HOST_MEMORY_FREE, &[], free);
        // Kernels before 3.14 lack MemAvailable; approximate it the way free(1) did.
        let available = field("MemAvailable").unwrap_or_else(|| {
            free + field("Buffers").unwrap_or(0.0) + field("Cached").unwrap_or(0.0)
        });
        sink.gauge(&cat::HOST_MEMORY_AVAILABLE, &[], available);
        let swap_used = field("SwapTotal").unwrap_or(0.0) - field("SwapFree").unwrap_or(0.0);
        sink.gauge(&cat::HOST_SWAP_USED, &[], swap_used.max(0.0));
        Ok(())
    }

    fn filesystems(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(self.file("self/mounts"))
            .map_err(|e| CollectError::failed("self/mounts", e))?;
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(device), Some(mountpoint), Some(fstype)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let mountpoint = unescape_mount(mountpoint);
            if excluded(&self.fs_types_exclude, fstype)
                || excluded(&self.mountpoints_exclude, &mountpoint)
                || !seen.insert(mountpoint.clone())
            {
                continue;
            }
            let network = NETWORK_FS.contains(&fstype) || fstype.starts_with("fuse.");
            let Some((size, available)) = self.statvfs(&mountpoint, network) else { continue };
            let labels = [device, mountpoint.as_str(), fstype];
            sink.gauge(&cat::HOST_FILESYSTEM_SIZE, &labels, size);
            sink.gauge(&cat::HOST_FILESYSTEM_AVAILABLE, &labels, available);
        }
        Ok(())
    }

    /// (size, available) in bytes. Network mounts are asked on a helper thread with a timeout.
    fn statvfs(&self, mountpoint: &str, network: bool) -> Option<(f64, f64)> {
        let read = |mp: &str| {
            rustix::fs::statvfs(mp).ok().map(|v| {
                let block = v.f_frsize as f64;
                (v.f_blocks as f64 * block, v.f_bavail as f64 * block)
            })
        };
        if !network {
            return read(mountpoint);
        }
        if !self.stuck_mounts.lock().insert(mountpoint.to_string()) {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (stuck, mp) = (self.stuck_mounts.clone(), mountpoint.to_string());
        let spawned = std::thread::Builder::new().name("statvfs".into()).spawn(move || {
            let result = read(&mp);
            stuck.lock().remove(&mp);
            let _ = tx.send(result);
        });
        if spawned.is_err() {
            self.stuck_mounts.lock().remove(mountpoint);
            return None;
        }
        match rx.recv_timeout(NETWORK_STATFS_TIMEOUT) {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    mountpoint,
                    "statvfs did not return in 1 s; mount skipped until it does"
                );
                None
            }
        }
    }

    fn disks(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(self.file("diskstats"))
            .map_err(|e| CollectError::failed("diskstats", e))?;
        for line in text.lines() {
            let Ok(d) = procfs::DiskStat::from_line(line) else { continue };
            if excluded(&self.disks_exclude, &d.name) {
                continue;
            }
            let dev = [d.name.as_str()];
            sink.counter(&cat::HOST_DISK_READ_BYTES, &dev, d.sectors_read as f64 * SECTOR_BYTES);
            sink.counter(
                &cat::HOST_DISK_WRITTEN_BYTES,
                &dev,
                d.sectors_written as f64 * SECTOR_BYTES,
            );
            sink.counter(&cat::HOST_DISK_READS, &dev, d.reads as f64);
            sink.counter(&cat::HOST_DISK_WRITES, &dev, d.writes as f64);
            sink.counter(&cat::HOST_DISK_IO_TIME, &dev, d.time_in_progress as f64 / 1000.0);
        }
        Ok(())
    }

    fn network(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(self.file("net/dev"))
            .map_err(|e| CollectError::failed("net/dev", e))?;
        // Two header lines, then `iface: rx_bytes rx_packets rx_errs rx_drop fifo frame
        // compressed multicast tx_bytes tx_packets tx_errs tx_drop ...`.
        for line in text.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else { continue };
            let name = name.trim();
            if excluded(&self.interfaces_exclude, name) {
                continue;
            }
            let v: Vec<f64> =
                rest.split_ascii_whitespace().filter_map(|f| f.parse::<f64>().ok()).collect();
            if v.len() < 12 {
                continue;
            }
            let i = [name];
            sink.counter(&cat::HOST_NET_RX_BYTES, &i, v[0]);
            sink.counter(&cat::HOST_NET_RX_PACKETS, &i, v[1]);
            sink.counter(&cat::HOST_NET_RX_ERRORS, &i, v[2]);
            sink.counter(&cat::HOST_NET_RX_DROPS, &i, v[3]);
            sink.counter(&cat::HOST_NET_TX_BYTES, &i, v[8]);
            sink.counter(&cat::HOST_NET_TX_PACKETS, &i, v[9]);
            sink.counter(&cat::HOST_NET_TX_ERRORS, &i, v[10]);
            sink.counter(&cat::HOST_NET_TX_DROPS, &i, v[11]);
        }
        Ok(())
    }
}

/// `Key:   value kB` lines of /proc/meminfo, in bytes.
fn parse_meminfo(text: &str) -> std::collections::HashMap<&str, f64> {
    let mut out = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let mut parts = rest.split_ascii_whitespace();
        let Some(v) = parts.next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let scale = if parts.next() == Some("kB") { 1024.0 } else { 1.0 };
        out.insert(key, v * scale);
    }
    out
}

/// /proc/mounts escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(code) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    /// Every section runs even when an earlier one failed; the first failure is reported.
    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let results = [
            self.cpu(sink),
            self.load(sink),
            self.memory(sink),
            self.filesystems(sink),
            self.disks(sink),
            self.network(sink),
        ];
        self.pressure(sink);
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::expo::Format;

    fn fixture_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("pressure")).unwrap();
        std::fs::create_dir_all(p.join("net")).unwrap();
        std::fs::create_dir_all(p.join("self")).unwrap();
        std::fs::write(
            p.join("stat"),
            "cpu  1000 20 300 40000 500 6 7 8 0 0\ncpu0 500 10 150 20000 250 3 3 4 0 0\ncpu1 500 10 150 20000 250 3 4 4 0 0\nintr 0\nctxt 12345\nbtime 1700000000\nprocesses 10\nprocs_running 1\nprocs_blocked 0\n",
        )
        .unwrap();
        std::fs::write(p.join("loadavg"), "0.50 1.25 2.00 1/234 5678\n").unwrap();
        let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n";
        for r in ["cpu", "memory", "io"] {
            std::fs::write(p.join("pressure").join(r), psi).unwrap();
        }
        std::fs::write(
            p.join("meminfo"),
            "MemTotal:       16000000 kB\nMemFree:         4000000 kB\nMemAvailable:    8000000 kB\nBuffers:          100000 kB\nCached:          2000000 kB\nSwapCached:            0 kB\nSwapTotal:       1000000 kB\nSwapFree:         750000 kB\n",
        )
        .unwrap();
        std::fs::write(
            p.join("diskstats"),
            "   8       0 sda 100 0 2048 10 200 0 4096 20 0 1500 30 0 0 0 0\n   8       1 sda1 50 0 1024 5 100 0 2048 10 0 700 15 0 0 0 0\n   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(
            p.join("net/dev"),
            "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  eth0: 5000000    4000    3    2    0     0          0         0  6000000    5000    1    4    0     0       0          0\n",
        )
        .unwrap();
        std::fs::write(
            p.join("self/mounts"),
            "/dev/root / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn reads_every_section_from_a_proc_tree() {
        let dir = fixture_root();
        let c = HostCollector::with_proc_root(&HostConfig::default(), dir.path().to_path_buf());
        let mut sink = MetricSink::new(Format::Text004);
        c.collect(&mut sink).unwrap();
        let text = sink.render();
        let tps = procfs::ticks_per_second() as f64;
        for expected in [
            format!("deepwatch_host_cpu_seconds_total{{mode=\"iowait\"}} {}", 500.0 / tps),
            format!("deepwatch_host_cpu_seconds_total{{mode=\"user\"}} {}", 1000.0 / tps),
            "deepwatch_host_cpus 2".to_string(),
            "deepwatch_host_load_average{window=\"5m\"} 1.25".to_string(),
            "deepwatch_host_pressure_stall_seconds_total{resource=\"io\",kind=\"full\"} 1"
                .to_string(),
            "deepwatch_host_pressure_stall_seconds_total{resource=\"memory\",kind=\"some\"} 2.5"
                .to_string(),
            "deepwatch_host_memory_available_bytes 8192000000".to_string(),
            "deepwatch_host_swap_used_bytes 256000000".to_string(),
            "deepwatch_host_disk_read_bytes_total{device=\"sda\"} 1048576".to_string(),
            "deepwatch_host_disk_io_time_seconds_total{device=\"sda\"} 1.5".to_string(),
            "deepwatch_host_network_receive_errors_total{interface=\"eth0\"} 3".to_string(),
            "deepwatch_host_network_transmit_drops_total{interface=\"eth0\"} 4".to_string(),
            "deepwatch_host_network_receive_bytes_total{interface=\"lo\"} 1000".to_string(),
            "deepwatch_host_filesystem_size_bytes{device=\"/dev/root\",mountpoint=\"/\",fstype=\"ext4\"}".to_string(),
        ] {
            assert!(text.contains(&expected), "missing {expected}\n{text}");
        }
        // Partitions, loop devices and pseudo filesystems are excluded by default.
        assert!(!text.contains("sda1") && !text.contains("loop0"), "{text}");
        assert!(!text.contains("mountpoint=\"/proc\"") && !text.contains("tmpfs"), "{text}");
    }

    #[test]
    fn a_missing_file_fails_the_run_but_keeps_the_rest() {
        let dir = fixture_root();
        std::fs::remove_file(dir.path().join("loadavg")).unwrap();
        let c = HostCollector::with_proc_root(&HostConfig::default(), dir.path().to_path_buf());
        let mut sink = MetricSink::new(Format::Text004);
        let err = c.collect(&mut sink).unwrap_err();
        assert!(err.to_string().starts_with("loadavg:"), "{err}");
        assert!(sink.render().contains("deepwatch_host_memory_total_bytes 16384000000"));
    }

    #[test]
    fn network_mounts_are_read_on_a_helper_thread_and_skipped_while_stuck() {
        let c = HostCollector::new(&HostConfig::default());
        let direct = c.statvfs("/", false).unwrap();
        assert!(direct.0 > 0.0);
        assert_eq!(c.statvfs("/", true).map(|v| v.0), Some(direct.0));
        // A mount whose previous statvfs never returned is not asked again.
        c.stuck_mounts.lock().insert("/".to_string());
        assert_eq!(c.statvfs("/", true), None);
        assert!(c.statvfs("/", false).is_some(), "local mounts are never guarded");
    }

    #[test]
    fn mount_escapes_are_decoded() {
        assert_eq!(unescape_mount("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}
