//! The GPU collector. NVML sits behind `GpuSource` so CI runs the same collector against
//! `FakeGpus`; the real source loads `libnvidia-ml.so.1` at run time, so a GPU-less node gets
//! `deepwatch_collector_up{collector="gpu"} 0` and one warning, never a crash. A GPU that falls
//! off the bus mid-run keeps its identity and shows `deepwatch_gpu_up 0`; XID events arrive
//! on a background thread and are counted by code.

pub mod fake;
#[cfg(feature = "nvml")]
pub mod nvml;

use crate::collector::{CollectError, Collector};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Who a GPU is: the three labels of every per-GPU series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuIdentity {
    pub index: u32,
    pub uuid: String,
    pub name: String,
}

/// One GPU's values at one moment. `None` means NVML does not support the field on this board
/// (no fan on passive boards, ECC off, ...): the series is left out, not faked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    pub utilization_gpu_percent: Option<f64>,
    pub utilization_memory_percent: Option<f64>,
    pub memory_used_bytes: Option<f64>,
    pub memory_free_bytes: Option<f64>,
    pub memory_total_bytes: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub memory_clock_mhz: Option<f64>,
    /// Every known throttle reason with whether it is active.
    pub throttle_reasons: Vec<(&'static str, bool)>,
    /// (error_type corrected|uncorrected, counter_type volatile|aggregate, count).
    pub ecc_errors: Vec<(&'static str, &'static str, f64)>,
    pub pcie_replays: Option<f64>,
    pub pcie_tx_bytes_per_second: Option<f64>,
    pub pcie_rx_bytes_per_second: Option<f64>,
    pub fan_speed_percent: Option<f64>,
    pub processes: Vec<GpuProcess>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpuProcess {
    pub pid: u32,
    pub name: String,
    pub used_bytes: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    pub driver_version: String,
    /// `12.4` style.
    pub cuda_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No NVML library or driver: not a GPU node.
    #[error("nvml unavailable: {0}")]
    Unavailable(String),
    /// The GPU stopped answering (fell off the bus, XID 79) or is no longer enumerated.
    #[error("gpu {index} lost: {reason}")]
    Lost { index: u32, reason: String },
    #[error("nvml call failed: {0}")]
    Failed(String),
}

/// One XID error event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidEvent {
    pub gpu: GpuIdentity,
    pub xid: u64,
}

pub type XidHandler = Arc<dyn Fn(XidEvent) + Send + Sync>;

/// Where GPU facts come from: NVML in production, `FakeGpus` in tests.
pub trait GpuSource: Send + Sync {
    fn driver(&self) -> Result<DriverInfo, GpuError>;
    fn device_count(&self) -> Result<u32, GpuError>;
    fn identity(&self, index: u32) -> Result<GpuIdentity, GpuError>;
    fn read(&self, index: u32, with_processes: bool) -> Result<GpuReading, GpuError>;
    /// Starts delivering XID events to `handler` (a background thread) until `stop` is set.
    fn watch_xid(&self, handler: XidHandler, stop: Arc<AtomicBool>) -> Result<(), GpuError>;
}

/// Opens the GPU source again, for nodes whose driver loads after the agent starts.
pub type GpuOpener = Arc<dyn Fn() -> Result<Arc<dyn GpuSource>, GpuError> + Send + Sync>;

/// How long after a failed NVML open the collector tries again.
pub const REOPEN_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

pub struct GpuCollector {
    source: Mutex<Result<Arc<dyn GpuSource>, GpuError>>,
    opener: Option<GpuOpener>,
    last_open: Mutex<tokio::time::Instant>,
    /// Start the XID watch when a late open succeeds.
    xid_on_open: std::sync::atomic::AtomicBool,
    with_processes: bool,
    xids: Arc<CounterVec>,
    /// Every GPU ever seen, by index, so a lost one keeps its labels on `deepwatch_gpu_up 0`.
    known: Mutex<BTreeMap<u32, GpuIdentity>>,
    stop_xid: Arc<AtomicBool>,
}

impl GpuCollector {
    /// `source` is the result of opening NVML; an error makes every scrape report the
    /// collector down with that reason.
    pub fn new(source: Result<Arc<dyn GpuSource>, GpuError>, with_processes: bool) -> Self {
        GpuCollector {
            source: Mutex::new(source),
            opener: None,
            last_open: Mutex::new(tokio::time::Instant::now()),
            xid_on_open: AtomicBool::new(false),
            with_processes,
            xids: Arc::new(CounterVec::new(&cat::GPU_XID_ERRORS)),
            known: Mutex::new(BTreeMap::new()),
            stop_xid: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Retries `opener` every `REOPEN_AFTER` while the source is unavailable.
    pub fn with_reopen(mut self, opener: GpuOpener) -> Self {
        self.opener = Some(opener);
        self
    }

    /// The source, after a retry of the open when it failed long enough ago.
    fn current_source(&self) -> Result<Arc<dyn GpuSource>, GpuError> {
        let mut source = self.source.lock();
        if let (Err(_), Some(opener)) = (&*source, &self.opener) {
            let mut last = self.last_open.lock();
            if last.elapsed() >= REOPEN_AFTER {
                *last = tokio::time::Instant::now();
                *source = opener();
                if source.is_ok() {
                    tracing::info!("nvml available now; gpu collector up");
                    if self.xid_on_open.load(std::sync::atomic::Ordering::Relaxed) {
                        drop(last);
                        let opened = source.clone();
                        drop(source);
                        if let Err(e) = self.watch_xid_on(opened) {
                            tracing::debug!(error = %e, "xid events not watched");
                        }
                        return self.source.lock().clone();
                    }
                }
            }
        }
        source.clone()
    }

    /// Counts XID events by GPU and code from now on (and from a late open, if NVML is not
    /// there yet).
    pub fn start_xid_watch(&self) -> Result<(), GpuError> {
        self.xid_on_open.store(true, std::sync::atomic::Ordering::Relaxed);
        let source = self.source.lock().clone();
        self.watch_xid_on(source)
    }

    fn watch_xid_on(&self, source: Result<Arc<dyn GpuSource>, GpuError>) -> Result<(), GpuError> {
        let source = source?;
        let xids = self.xids.clone();
        let handler: XidHandler = Arc::new(move |e: XidEvent| {
            let index = e.gpu.index.to_string();
            let xid = e.xid.to_string();
            tracing::warn!(gpu = %index, gpu_uuid = %e.gpu.uuid, xid = e.xid, "gpu xid error");
            xids.inc(&[&index, &e.gpu.uuid, &e.gpu.name, &xid]);
        });
        source.watch_xid(handler, self.stop_xid.clone())
    }

    fn emit(&self, sink: &mut MetricSink, id: &GpuIdentity, r: &GpuReading) {
        let index = id.index.to_string();
        let l = [index.as_str(), id.uuid.as_str(), id.name.as_str()];
        let mut g = |spec, v: Option<f64>| {
            if let Some(v) = v {
                sink.gauge(spec, &l, v);
            }
        };
        g(&cat::GPU_UTILIZATION, r.utilization_gpu_percent.map(|p| p / 100.0));
        g(&cat::GPU_MEMORY_UTILIZATION, r.utilization_memory_percent.map(|p| p / 100.0));
        g(&cat::GPU_MEMORY_USED, r.memory_used_bytes);
        g(&cat::GPU_MEMORY_FREE, r.memory_free_bytes);
        g(&cat::GPU_MEMORY_TOTAL, r.memory_total_bytes);
        g(&cat::GPU_TEMPERATURE, r.temperature_celsius);
        g(&cat::GPU_POWER, r.power_watts);
        g(&cat::GPU_POWER_LIMIT, r.power_limit_watts);
        g(&cat::GPU_SM_CLOCK, r.sm_clock_mhz.map(|m| m * 1e6));
        g(&cat::GPU_MEMORY_CLOCK, r.memory_clock_mhz.map(|m| m * 1e6));
        g(&cat::GPU_FAN_SPEED, r.fan_speed_percent.map(|p| p / 100.0));
        for (reason, active) in &r.throttle_reasons {
            let v = if *active { 1.0 } else { 0.0 };
            sink.gauge(&cat::GPU_THROTTLE_REASON, &[l[0], l[1], l[2], reason], v);
        }
        for (error_type, counter_type, n) in &r.ecc_errors {
            sink.counter(&cat::GPU_ECC_ERRORS, &[l[0], l[1], l[2], error_type, counter_type], *n);
        }
        if let Some(n) = r.pcie_replays {
            sink.counter(&cat::GPU_PCIE_REPLAYS, &l, n);
        }
        if let Some(v) = r.pcie_tx_bytes_per_second {
            sink.gauge(&cat::GPU_PCIE_THROUGHPUT, &[l[0], l[1], l[2], "tx"], v);
        }
        if let Some(v) = r.pcie_rx_bytes_per_second {
            sink.gauge(&cat::GPU_PCIE_THROUGHPUT, &[l[0], l[1], l[2], "rx"], v);
        }
        for p in &r.processes {
            let pid = p.pid.to_string();
            sink.gauge(&cat::GPU_PROCESS_MEMORY, &[l[0], l[1], l[2], &pid, &p.name], p.used_bytes);
        }
    }
}

impl Drop for GpuCollector {
    fn drop(&mut self) {
        self.stop_xid.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Collector for GpuCollector {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn slow(&self) -> bool {
        true
    }

    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let source = match self.current_source() {
            Ok(s) => s,
            Err(e) => {
                let reason = match e {
                    GpuError::Unavailable(reason) => reason,
                    other => other.to_string(),
                };
                return Err(CollectError::Unavailable { what: "nvml", reason });
            }
        };
        let driver = source.driver().map_err(|e| CollectError::failed("nvml driver", e))?;
        sink.gauge(&cat::GPU_DRIVER_INFO, &[&driver.driver_version, &driver.cuda_version], 1.0);
        let count = source.device_count().map_err(|e| CollectError::failed("nvml devices", e))?;
        sink.gauge(&cat::GPU_COUNT, &[], count as f64);
        sink.declare(&cat::GPU_UP);
        let mut up: BTreeMap<u32, bool> = BTreeMap::new();
        for position in 0..count {
            let identity = match source.identity(position) {
                Ok(id) => id,
                Err(e) => {
                    tracing::debug!(gpu = position, error = %e, "gpu identity unreadable");
                    continue;
                }
            };
            let readable = match source.read(position, self.with_processes) {
                Ok(reading) => {
                    self.emit(sink, &identity, &reading);
                    true
                }
                Err(e) => {
                    tracing::debug!(gpu = position, error = %e, "gpu unreadable");
                    false
                }
            };
            up.insert(identity.index, readable);
            self.known.lock().insert(identity.index, identity);
        }
        // GPUs seen before but not enumerated now are lost too.
        let known = self.known.lock().clone();
        for (index, id) in &known {
            let is_up = up.get(index).copied().unwrap_or(false);
            let i = index.to_string();
            sink.gauge(&cat::GPU_UP, &[&i, &id.uuid, &id.name], if is_up { 1.0 } else { 0.0 });
        }
        self.xids.encode(sink);
        Ok(())
    }
}

/// Opens the real NVML (when built with the `nvml` feature).
pub fn open_nvml(library: &str) -> Result<Arc<dyn GpuSource>, GpuError> {
    #[cfg(feature = "nvml")]
    {
        nvml::NvmlSource::open(library).map(|s| Arc::new(s) as Arc<dyn GpuSource>)
    }
    #[cfg(not(feature = "nvml"))]
    {
        let _ = library;
        Err(GpuError::Unavailable("built without the nvml feature".into()))
    }
}

#[cfg(test)]
mod tests;
