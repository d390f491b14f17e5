//! Metrics emitted by the node agent: GPU (NVML), host (procfs), selected processes,
//! normalized inference-engine metrics, log counters and peer latency.

use super::{buckets, MetricSpec, MetricType};
use crate::engines::vllm;

const GPU: &[&str] = &["gpu", "gpu_uuid", "gpu_name"];

// === GPU ===

pub const GPU_UTILIZATION: MetricSpec = spec!("deepwatch_gpu_utilization_ratio", Gauge, "ratio", GPU,
    "Fraction of the last sample period during which one or more kernels ran on the GPU (NVML utilization.gpu).");
pub const GPU_MEMORY_UTILIZATION: MetricSpec = spec!("deepwatch_gpu_memory_utilization_ratio", Gauge, "ratio", GPU,
    "Fraction of the last sample period during which device memory was read or written (NVML utilization.memory).");
pub const GPU_MEMORY_USED: MetricSpec = spec!(
    "deepwatch_gpu_memory_used_bytes",
    Gauge,
    "bytes",
    GPU,
    "Device memory allocated, in bytes."
);
pub const GPU_MEMORY_FREE: MetricSpec =
    spec!("deepwatch_gpu_memory_free_bytes", Gauge, "bytes", GPU, "Device memory free, in bytes.");
pub const GPU_MEMORY_TOTAL: MetricSpec = spec!(
    "deepwatch_gpu_memory_total_bytes",
    Gauge,
    "bytes",
    GPU,
    "Device memory installed, in bytes."
);
pub const GPU_TEMPERATURE: MetricSpec =
    spec!("deepwatch_gpu_temperature_celsius", Gauge, "celsius", GPU, "GPU core temperature.");
pub const GPU_POWER: MetricSpec =
    spec!("deepwatch_gpu_power_watts", Gauge, "watts", GPU, "Power draw of the board.");
pub const GPU_POWER_LIMIT: MetricSpec = spec!(
    "deepwatch_gpu_power_limit_watts",
    Gauge,
    "watts",
    GPU,
    "Enforced power limit of the board."
);
pub const GPU_SM_CLOCK: MetricSpec = spec!(
    "deepwatch_gpu_sm_clock_hertz",
    Gauge,
    "hertz",
    GPU,
    "Current streaming-multiprocessor clock."
);
pub const GPU_MEMORY_CLOCK: MetricSpec =
    spec!("deepwatch_gpu_memory_clock_hertz", Gauge, "hertz", GPU, "Current memory clock.");
pub const GPU_THROTTLE_REASON: MetricSpec = spec!(
    "deepwatch_gpu_throttle_reason_active",
    Gauge,
    "",
    &["gpu", "gpu_uuid", "gpu_name", "reason"],
    "1 while the named clock throttle reason is active (NVML clocks event reasons), else 0."
);
pub const GPU_ECC_ERRORS: MetricSpec = spec!("deepwatch_gpu_ecc_errors_total", Counter, "",
    &["gpu", "gpu_uuid", "gpu_name", "error_type", "counter_type"],
    "ECC errors by error_type (corrected, uncorrected) and counter_type (volatile since driver load, aggregate over the lifetime).");
pub const GPU_PCIE_REPLAYS: MetricSpec = spec!(
    "deepwatch_gpu_pcie_replays_total",
    Counter,
    "",
    GPU,
    "PCIe replay counter: link-level retransmissions, a sign of a marginal link."
);
pub const GPU_PCIE_THROUGHPUT: MetricSpec = spec!(
    "deepwatch_gpu_pcie_throughput_bytes_per_second",
    Gauge,
    "",
    &["gpu", "gpu_uuid", "gpu_name", "direction"],
    "PCIe throughput sampled by NVML over its last 20 ms window, by direction (tx, rx)."
);
pub const GPU_FAN_SPEED: MetricSpec = spec!(
    "deepwatch_gpu_fan_speed_ratio",
    Gauge,
    "ratio",
    GPU,
    "Fan speed as a fraction of its maximum (absent on passively cooled boards)."
);
pub const GPU_XID_ERRORS: MetricSpec = spec!(
    "deepwatch_gpu_xid_errors_total",
    Counter,
    "",
    &["gpu", "gpu_uuid", "gpu_name", "xid"],
    "XID error events reported by the driver, counted by XID code."
);
pub const GPU_PROCESS_MEMORY: MetricSpec = spec!(
    "deepwatch_gpu_process_memory_used_bytes",
    Gauge,
    "bytes",
    &["gpu", "gpu_uuid", "gpu_name", "pid", "process_name"],
    "Device memory used by one process on one GPU."
);
pub const GPU_DRIVER_INFO: MetricSpec = spec!(
    "deepwatch_gpu_driver_info",
    Info,
    "",
    &["driver_version", "cuda_version"],
    "Always 1; labels carry the NVIDIA driver and CUDA driver API versions."
);
pub const GPU_UP: MetricSpec = spec!(
    "deepwatch_gpu_up",
    Gauge,
    "",
    GPU,
    "1 while NVML answers for the GPU, 0 once it stopped answering or vanished (fell off the bus)."
);
pub const GPU_COUNT: MetricSpec =
    spec!("deepwatch_gpus", Gauge, "", &[], "Number of GPUs NVML reports on this node.");

// === host ===

pub const HOST_CPU_SECONDS: MetricSpec = spec!(
    "deepwatch_host_cpu_seconds_total",
    Counter,
    "",
    &["mode"],
    "CPU time of all cores by mode (user, nice, system, idle, iowait, irq, softirq, steal)."
);
pub const HOST_CPU_COUNT: MetricSpec =
    spec!("deepwatch_host_cpus", Gauge, "", &[], "Number of online logical CPUs.");
pub const HOST_LOAD: MetricSpec = spec!(
    "deepwatch_host_load_average",
    Gauge,
    "",
    &["window"],
    "Load average over window (1m, 5m, 15m)."
);
pub const HOST_PRESSURE: MetricSpec = spec!("deepwatch_host_pressure_stall_seconds_total", Counter, "",
    &["resource", "kind"],
    "Pressure stall information: time tasks were stalled on resource (cpu, memory, io), kind some or full.");
pub const HOST_MEMORY_TOTAL: MetricSpec =
    spec!("deepwatch_host_memory_total_bytes", Gauge, "bytes", &[], "Physical memory installed.");
pub const HOST_MEMORY_AVAILABLE: MetricSpec = spec!(
    "deepwatch_host_memory_available_bytes",
    Gauge,
    "bytes",
    &[],
    "Memory available for new work without swapping (MemAvailable)."
);
pub const HOST_MEMORY_FREE: MetricSpec = spec!(
    "deepwatch_host_memory_free_bytes",
    Gauge,
    "bytes",
    &[],
    "Memory not used at all (MemFree)."
);
pub const HOST_SWAP_USED: MetricSpec =
    spec!("deepwatch_host_swap_used_bytes", Gauge, "bytes", &[], "Swap in use.");
pub const HOST_FILESYSTEM_SIZE: MetricSpec = spec!(
    "deepwatch_host_filesystem_size_bytes",
    Gauge,
    "bytes",
    &["device", "mountpoint", "fstype"],
    "Size of a mounted filesystem."
);
pub const HOST_FILESYSTEM_AVAILABLE: MetricSpec = spec!(
    "deepwatch_host_filesystem_available_bytes",
    Gauge,
    "bytes",
    &["device", "mountpoint", "fstype"],
    "Space available to unprivileged users on a mounted filesystem."
);
pub const HOST_DISK_READ_BYTES: MetricSpec = spec!(
    "deepwatch_host_disk_read_bytes_total",
    Counter,
    "",
    &["device"],
    "Bytes read from a block device."
);
pub const HOST_DISK_WRITTEN_BYTES: MetricSpec = spec!(
    "deepwatch_host_disk_written_bytes_total",
    Counter,
    "",
    &["device"],
    "Bytes written to a block device."
);
pub const HOST_DISK_READS: MetricSpec = spec!(
    "deepwatch_host_disk_reads_completed_total",
    Counter,
    "",
    &["device"],
    "Reads completed on a block device."
);
pub const HOST_DISK_WRITES: MetricSpec = spec!(
    "deepwatch_host_disk_writes_completed_total",
    Counter,
    "",
    &["device"],
    "Writes completed on a block device."
);
pub const HOST_DISK_IO_TIME: MetricSpec = spec!(
    "deepwatch_host_disk_io_time_seconds_total",
    Counter,
    "",
    &["device"],
    "Time a block device spent doing I/O."
);
pub const HOST_NET_RX_BYTES: MetricSpec = spec!(
    "deepwatch_host_network_receive_bytes_total",
    Counter,
    "",
    &["interface"],
    "Bytes received on a network interface."
);
pub const HOST_NET_TX_BYTES: MetricSpec = spec!(
    "deepwatch_host_network_transmit_bytes_total",
    Counter,
    "",
    &["interface"],
    "Bytes sent on a network interface."
);
pub const HOST_NET_RX_PACKETS: MetricSpec = spec!(
    "deepwatch_host_network_receive_packets_total",
    Counter,
    "",
    &["interface"],
    "Packets received on a network interface."
);
pub const HOST_NET_TX_PACKETS: MetricSpec = spec!(
    "deepwatch_host_network_transmit_packets_total",
    Counter,
    "",
    &["interface"],
    "Packets sent on a network interface."
);
pub const HOST_NET_RX_ERRORS: MetricSpec = spec!(
    "deepwatch_host_network_receive_errors_total",
    Counter,
    "",
    &["interface"],
    "Receive errors on a network interface."
);
pub const HOST_NET_TX_ERRORS: MetricSpec = spec!(
    "deepwatch_host_network_transmit_errors_total",
    Counter,
    "",
    &["interface"],
    "Transmit errors on a network interface."
);
pub const HOST_NET_RX_DROPS: MetricSpec = spec!(
    "deepwatch_host_network_receive_drops_total",
    Counter,
    "",
    &["interface"],
    "Received packets dropped on a network interface."
);
pub const HOST_NET_TX_DROPS: MetricSpec = spec!(
    "deepwatch_host_network_transmit_drops_total",
    Counter,
    "",
    &["interface"],
    "Outgoing packets dropped on a network interface."
);

// === processes ===

const PROC: &[&str] = &["process", "pid"];

pub const PROCESS_MATCHED: MetricSpec = spec!(
    "deepwatch_process_matched",
    Gauge,
    "",
    &["process"],
    "Number of running processes that match the configured selector (0 means the process is gone)."
);
pub const PROCESS_RSS: MetricSpec = spec!(
    "deepwatch_process_resident_memory_bytes",
    Gauge,
    "bytes",
    PROC,
    "Resident set size of a selected process."
);
pub const PROCESS_CPU_SECONDS: MetricSpec = spec!(
    "deepwatch_process_cpu_seconds_total",
    Counter,
    "",
    PROC,
    "User and system CPU time of a selected process."
);
pub const PROCESS_OPEN_FDS: MetricSpec = spec!(
    "deepwatch_process_open_fds",
    Gauge,
    "",
    PROC,
    "Open file descriptors of a selected process."
);
pub const PROCESS_THREADS: MetricSpec =
    spec!("deepwatch_process_threads", Gauge, "", PROC, "Threads of a selected process.");
pub const PROCESS_MEMORY_GROWTH: MetricSpec = spec!("deepwatch_process_memory_growth_bytes_per_second", Gauge, "", PROC,
    "Robust slope of resident memory over the configured window: the leak rate (10 MB/min is about 166667).");

// === inference engines (normalized across vLLM, SGLang, TGI, llama.cpp) ===

const ENG: &[&str] = &["engine", "engine_kind", "model"];

pub const ENGINE_UP: MetricSpec = spec!(
    "deepwatch_engine_up",
    Gauge,
    "",
    &["engine", "engine_kind"],
    "1 when the engine's last metrics scrape succeeded, 0 when it failed or timed out."
);
pub const ENGINE_STALLED: MetricSpec = spec!("deepwatch_engine_stalled", Gauge, "", &["engine", "engine_kind"],
    "1 while requests are running but the engine's progress counters have not advanced for the configured stall time.");
pub const ENGINE_SCRAPE_ERRORS: MetricSpec = spec!(
    "deepwatch_engine_scrape_errors_total",
    Counter,
    "",
    &["engine", "reason"],
    "Failed engine scrapes by reason (connect, timeout, status, too_large, parse), and scrapes cut to max_series (too_many_series)."
);
pub const ENGINE_REQUESTS_RUNNING: MetricSpec = spec!("deepwatch_engine_requests_running", Gauge, "", ENG,
    "Requests the engine is currently running (vLLM num_requests_running, SGLang num_running_reqs, ...).");
pub const ENGINE_REQUESTS_WAITING: MetricSpec = spec!(
    "deepwatch_engine_requests_waiting",
    Gauge,
    "",
    ENG,
    "Requests queued in the engine waiting to be scheduled."
);
pub const ENGINE_KV_CACHE_USAGE: MetricSpec = spec!(
    "deepwatch_engine_kv_cache_usage_ratio",
    Gauge,
    "ratio",
    ENG,
    "Fraction of the engine's KV cache in use (0-1)."
);
pub const ENGINE_PROMPT_TOKENS: MetricSpec = spec!(
    "deepwatch_engine_prompt_tokens_total",
    Counter,
    "",
    ENG,
    "Prefill (prompt) tokens processed by the engine."
);
pub const ENGINE_GENERATION_TOKENS: MetricSpec = spec!(
    "deepwatch_engine_generation_tokens_total",
    Counter,
    "",
    ENG,
    "Tokens generated by the engine."
);
pub const ENGINE_PREEMPTIONS: MetricSpec = spec!(
    "deepwatch_engine_preemptions_total",
    Counter,
    "",
    ENG,
    "Requests preempted (vLLM) or retracted (SGLang) for lack of KV cache."
);
pub const ENGINE_REQUEST_SUCCESS: MetricSpec = spec!(
    "deepwatch_engine_requests_finished_total",
    Counter,
    "",
    &["engine", "engine_kind", "model", "finish_reason"],
    "Requests the engine finished, by finish reason (stop, length, abort, error, ...)."
);

/// Engine latency histograms keep the engine's own bucket edges (they differ per engine);
/// `buckets` here is vLLM's layout, the most common one.
pub const ENGINE_TTFT: MetricSpec = MetricSpec {
    name: "deepwatch_engine_time_to_first_token_seconds",
    help: "Engine-side time to first token. Bucket edges are the engine's own.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: ENG,
    buckets: vllm::TTFT_BUCKETS,
};
pub const ENGINE_E2E: MetricSpec = MetricSpec {
    name: "deepwatch_engine_e2e_request_latency_seconds",
    help: "Engine-side end-to-end request latency. Bucket edges are the engine's own.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: ENG,
    buckets: vllm::REQUEST_LATENCY_BUCKETS,
};
pub const ENGINE_ITL: MetricSpec = MetricSpec {
    name: "deepwatch_engine_inter_token_latency_seconds",
    help: "Engine-side gap between output tokens. Bucket edges are the engine's own.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: ENG,
    buckets: vllm::ITL_BUCKETS,
};

/// Per-request phase times (vLLM: queue = QUEUED to last SCHEDULED, prefill = SCHEDULED to first
/// token, decode = first to last token, inference = prefill + decode).
pub const ENGINE_QUEUE_TIME: MetricSpec = hist!(
    "deepwatch_engine_request_queue_time_seconds",
    "seconds",
    ENG,
    vllm::REQUEST_LATENCY_BUCKETS,
    "Time requests waited in the engine's queue before being scheduled. Bucket edges are the engine's own."
);
pub const ENGINE_PREFILL_TIME: MetricSpec = hist!(
    "deepwatch_engine_request_prefill_time_seconds",
    "seconds",
    ENG,
    vllm::REQUEST_LATENCY_BUCKETS,
    "Time from a request's scheduling to its first token (prefill). Bucket edges are the engine's own."
);
pub const ENGINE_DECODE_TIME: MetricSpec = hist!(
    "deepwatch_engine_request_decode_time_seconds",
    "seconds",
    ENG,
    vllm::REQUEST_LATENCY_BUCKETS,
    "Time from a request's first to its last token (decode). Bucket edges are the engine's own."
);
pub const ENGINE_INFERENCE_TIME: MetricSpec = hist!(
    "deepwatch_engine_request_inference_time_seconds",
    "seconds",
    ENG,
    vllm::REQUEST_LATENCY_BUCKETS,
    "Time a request spent running (prefill plus decode). Bucket edges are the engine's own."
);
pub const ENGINE_TPOT: MetricSpec = hist!(
    "deepwatch_engine_time_per_output_token_seconds",
    "seconds",
    ENG,
    vllm::ITL_BUCKETS,
    "Per-request mean time per output token after the first. Bucket edges are the engine's own."
);
pub const ENGINE_PROMPT_LENGTH: MetricSpec = hist!(
    "deepwatch_engine_request_prompt_tokens",
    "",
    ENG,
    buckets::TOKEN_COUNT,
    "Prompt length of finished requests, in tokens. Bucket edges are the engine's own."
);
pub const ENGINE_GENERATION_LENGTH: MetricSpec = hist!(
    "deepwatch_engine_request_generation_tokens",
    "",
    ENG,
    buckets::TOKEN_COUNT,
    "Generated length of finished requests, in tokens. Bucket edges are the engine's own."
);
pub const ENGINE_PREFIX_CACHE_QUERIES: MetricSpec = spec!(
    "deepwatch_engine_prefix_cache_queries_total",
    Counter,
    "",
    ENG,
    "Prompt tokens looked up in the engine's prefix cache."
);
pub const ENGINE_PREFIX_CACHE_HITS: MetricSpec = spec!(
    "deepwatch_engine_prefix_cache_hits_total",
    Counter,
    "",
    ENG,
    "Prompt tokens found in the engine's prefix cache (not computed again)."
);
pub const ENGINE_REQUESTS_WAITING_BY_REASON: MetricSpec = spec!(
    "deepwatch_engine_requests_waiting_by_reason",
    Gauge,
    "",
    &["engine", "engine_kind", "model", "reason"],
    "Requests queued in the engine by why they wait (vLLM: capacity, deferred)."
);

// === logs ===

pub const LOG_LINES: MetricSpec =
    spec!("deepwatch_log_lines_total", Counter, "", &["file", "level"],
    "Lines read from a tailed log file, by detected level (error, warning, info, debug, other).");
pub const LOG_PATTERN_MATCHES: MetricSpec =
    spec!("deepwatch_log_pattern_matches_total", Counter, "",
    &["file", "pattern"],
    "Lines of a tailed log file that matched a configured named pattern (for example cuda_oom).");
pub const LOG_FILE_UP: MetricSpec = spec!(
    "deepwatch_log_file_up",
    Gauge,
    "",
    &["file"],
    "1 while the tailed file exists and is readable, 0 while it is missing."
);

// === peers ===

pub const PEER_CONNECT_LATENCY: MetricSpec = MetricSpec {
    name: "deepwatch_peer_connect_latency_seconds",
    help: "TCP connect time to a configured peer node: inter-node latency.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: &["peer"],
    buckets: buckets::NETWORK_SECONDS,
};
pub const PEER_UP: MetricSpec = spec!(
    "deepwatch_peer_up",
    Gauge,
    "",
    &["peer"],
    "1 when the last connect to the peer succeeded, else 0."
);
pub const PEER_CONNECT_FAILURES: MetricSpec = spec!(
    "deepwatch_peer_connect_failures_total",
    Counter,
    "",
    &["peer"],
    "Failed connect attempts to a peer (refused, unreachable, timed out)."
);

// === push mode ===

pub const AGENT_PUSHES: MetricSpec = spec!(
    "deepwatch_agent_pushes_total",
    Counter,
    "",
    &["outcome"],
    "Pushes of the agent's metrics in push mode (a Pushgateway PUT or a remote_write request), by outcome (ok, error)."
);
pub const AGENT_PUSH_SAMPLES: MetricSpec = spec!(
    "deepwatch_agent_push_samples_total",
    Counter,
    "",
    &["outcome"],
    "Samples of remote_write push mode by outcome: sent (accepted by the receiver), dropped (the buffer was full while the receiver was down), rejected (the receiver refused them with a 4xx)."
);
pub const AGENT_PUSH_BUFFERED: MetricSpec = spec!(
    "deepwatch_agent_push_buffered_samples",
    Gauge,
    "",
    &[],
    "Samples of remote_write push mode waiting to be sent (collected, not yet accepted)."
);

pub const ALL: &[&MetricSpec] = &[
    &GPU_UTILIZATION,
    &GPU_MEMORY_UTILIZATION,
    &GPU_MEMORY_USED,
    &GPU_MEMORY_FREE,
    &GPU_MEMORY_TOTAL,
    &GPU_TEMPERATURE,
    &GPU_POWER,
    &GPU_POWER_LIMIT,
    &GPU_SM_CLOCK,
    &GPU_MEMORY_CLOCK,
    &GPU_THROTTLE_REASON,
    &GPU_ECC_ERRORS,
    &GPU_PCIE_REPLAYS,
    &GPU_PCIE_THROUGHPUT,
    &GPU_FAN_SPEED,
    &GPU_XID_ERRORS,
    &GPU_PROCESS_MEMORY,
    &GPU_DRIVER_INFO,
    &GPU_COUNT,
    &GPU_UP,
    &HOST_CPU_SECONDS,
    &HOST_CPU_COUNT,
    &HOST_LOAD,
    &HOST_PRESSURE,
    &HOST_MEMORY_TOTAL,
    &HOST_MEMORY_AVAILABLE,
    &HOST_MEMORY_FREE,
    &HOST_SWAP_USED,
    &HOST_FILESYSTEM_SIZE,
    &HOST_FILESYSTEM_AVAILABLE,
    &HOST_DISK_READ_BYTES,
    &HOST_DISK_WRITTEN_BYTES,
    &HOST_DISK_READS,
    &HOST_DISK_WRITES,
    &HOST_DISK_IO_TIME,
    &HOST_NET_RX_BYTES,
    &HOST_NET_TX_BYTES,
    &HOST_NET_RX_PACKETS,
    &HOST_NET_TX_PACKETS,
    &HOST_NET_RX_ERRORS,
    &HOST_NET_TX_ERRORS,
    &HOST_NET_RX_DROPS,
    &HOST_NET_TX_DROPS,
    &PROCESS_MATCHED,
    &PROCESS_RSS,
    &PROCESS_CPU_SECONDS,
    &PROCESS_OPEN_FDS,
    &PROCESS_THREADS,
    &PROCESS_MEMORY_GROWTH,
    &ENGINE_UP,
    &ENGINE_STALLED,
    &ENGINE_SCRAPE_ERRORS,
    &ENGINE_REQUESTS_RUNNING,
    &ENGINE_REQUESTS_WAITING,
    &ENGINE_KV_CACHE_USAGE,
    &ENGINE_PROMPT_TOKENS,
    &ENGINE_GENERATION_TOKENS,
    &ENGINE_PREEMPTIONS,
    &ENGINE_REQUEST_SUCCESS,
    &ENGINE_TTFT,
    &ENGINE_E2E,
    &ENGINE_ITL,
    &ENGINE_QUEUE_TIME,
    &ENGINE_PREFILL_TIME,
    &ENGINE_DECODE_TIME,
    &ENGINE_INFERENCE_TIME,
    &ENGINE_TPOT,
    &ENGINE_PROMPT_LENGTH,
    &ENGINE_GENERATION_LENGTH,
    &ENGINE_PREFIX_CACHE_QUERIES,
    &ENGINE_PREFIX_CACHE_HITS,
    &ENGINE_REQUESTS_WAITING_BY_REASON,
    &LOG_LINES,
    &LOG_PATTERN_MATCHES,
    &LOG_FILE_UP,
    &PEER_CONNECT_LATENCY,
    &PEER_UP,
    &PEER_CONNECT_FAILURES,
    &AGENT_PUSHES,
    &AGENT_PUSH_SAMPLES,
    &AGENT_PUSH_BUFFERED,
];
