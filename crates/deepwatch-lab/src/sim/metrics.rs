//! The simulator's `/metrics`: vLLM's own names, types, label sets (`model_name`, `engine`) and
//! bucket layouts from `deepwatch_core::engines::vllm`, plus the `process_*` families that
//! Python's prometheus_client exposes, so the agent reads the simulator as it reads vLLM.
//! vLLM declares no units, so no `# UNIT` lines are written either.

use deepwatch_core::catalog::{MetricSpec, MetricType};
use deepwatch_core::engines::vllm;
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::{Counter, CounterVec, Encode, GaugeVec, Histogram, HistogramVec};
use std::sync::Arc;

const L: &[&str] = vllm::LABELS;
const L_REASON: &[&str] = &["model_name", "engine", "finished_reason"];
const L_WAITING: &[&str] = &["model_name", "engine", vllm::WAITING_REASON_LABEL];

const fn spec(
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> MetricSpec {
    MetricSpec { name, help, kind, unit: "", labels, buckets }
}

use MetricType::{Counter as C, Gauge as G, Histogram as H};

static RUNNING: MetricSpec =
    spec(vllm::NUM_REQUESTS_RUNNING, "Number of requests in model execution batches.", G, L, &[]);
static WAITING: MetricSpec =
    spec(vllm::NUM_REQUESTS_WAITING, "Number of requests waiting to be processed.", G, L, &[]);
static WAITING_BY_REASON: MetricSpec = spec(
    vllm::NUM_REQUESTS_WAITING_BY_REASON,
    "Number of waiting requests by reason. Sum of all reasons equals vllm:num_requests_waiting.",
    G,
    L_WAITING,
    &[],
);
static PREFIX_QUERIES: MetricSpec = spec(
    vllm::PREFIX_CACHE_QUERIES_TOTAL,
    "Prefix cache queries, in terms of number of queried tokens.",
    C,
    L,
    &[],
);
static PREFIX_HITS: MetricSpec = spec(
    vllm::PREFIX_CACHE_HITS_TOTAL,
    "Prefix cache hits, in terms of number of cached tokens.",
    C,
    L,
    &[],
);
static KV_USAGE: MetricSpec =
    spec(vllm::KV_CACHE_USAGE_PERC, "KV-cache usage. 1 means 100 percent usage.", G, L, &[]);
/// Before vLLM 0.9 (`--legacy-metric-names`).
static GPU_CACHE_USAGE: MetricSpec =
    spec(vllm::GPU_CACHE_USAGE_PERC, "GPU KV-cache usage. 1 means 100 percent usage.", G, L, &[]);
static CACHE_INFO: MetricSpec = spec(
    vllm::CACHE_CONFIG_INFO,
    "Information of the LLMEngine CacheConfig",
    G,
    &["block_size", "engine", "num_gpu_blocks"],
    &[],
);
static PREEMPTIONS: MetricSpec = spec(
    vllm::NUM_PREEMPTIONS_TOTAL,
    "Cumulative number of preemption from the engine.",
    C,
    L,
    &[],
);
static PROMPT_TOKENS: MetricSpec =
    spec(vllm::PROMPT_TOKENS_TOTAL, "Number of prefill tokens processed.", C, L, &[]);
static GENERATION_TOKENS: MetricSpec =
    spec(vllm::GENERATION_TOKENS_TOTAL, "Number of generation tokens processed.", C, L, &[]);
static SUCCESS: MetricSpec = spec(
    vllm::REQUEST_SUCCESS_TOTAL,
    "Count of successfully processed requests.",
    C,
    L_REASON,
    &[],
);
static ITERATION_TOKENS: MetricSpec = spec(
    vllm::ITERATION_TOKENS_TOTAL,
    "Histogram of number of tokens per engine_step.",
    H,
    L,
    vllm::ITERATION_TOKENS_BUCKETS,
);
static TTFT: MetricSpec = spec(
    vllm::TIME_TO_FIRST_TOKEN_SECONDS,
    "Histogram of time to first token in seconds.",
    H,
    L,
    vllm::TTFT_BUCKETS,
);
static ITL: MetricSpec = spec(
    vllm::INTER_TOKEN_LATENCY_SECONDS,
    "Histogram of inter-token latency in seconds.",
    H,
    L,
    vllm::ITL_BUCKETS,
);
/// Before vLLM 0.11 (`--legacy-metric-names`).
static TPOT_LEGACY: MetricSpec = spec(
    vllm::TIME_PER_OUTPUT_TOKEN_SECONDS,
    "Histogram of time per output token in seconds.",
    H,
    L,
    vllm::ITL_BUCKETS,
);
static TPOT: MetricSpec = spec(
    vllm::REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS,
    "Histogram of time_per_output_token_seconds per request.",
    H,
    L,
    vllm::ITL_BUCKETS,
);
static E2E: MetricSpec = spec(
    vllm::E2E_REQUEST_LATENCY_SECONDS,
    "Histogram of e2e request latency in seconds.",
    H,
    L,
    vllm::REQUEST_LATENCY_BUCKETS,
);
static QUEUE: MetricSpec = spec(
    vllm::REQUEST_QUEUE_TIME_SECONDS,
    "Histogram of time spent in WAITING phase for request.",
    H,
    L,
    vllm::REQUEST_LATENCY_BUCKETS,
);
static INFERENCE: MetricSpec = spec(
    vllm::REQUEST_INFERENCE_TIME_SECONDS,
    "Histogram of time spent in RUNNING phase for request.",
    H,
    L,
    vllm::REQUEST_LATENCY_BUCKETS,
);
static PREFILL: MetricSpec = spec(
    vllm::REQUEST_PREFILL_TIME_SECONDS,
    "Histogram of time spent in PREFILL phase for request.",
    H,
    L,
    vllm::REQUEST_LATENCY_BUCKETS,
);
static DECODE: MetricSpec = spec(
    vllm::REQUEST_DECODE_TIME_SECONDS,
    "Histogram of time spent in DECODE phase for request.",
    H,
    L,
    vllm::REQUEST_LATENCY_BUCKETS,
);

/// How a request ended, as vLLM's `finished_reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    Abort,
    Error,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error => "error",
        }
    }
}

/// Live engine metrics. Handles for the one (model, engine) label set are fetched once, so
/// the request path only touches atomics.
pub struct EngineMetrics {
    families: Vec<Arc<dyn Encode>>,
    running: GaugeVec,
    waiting: GaugeVec,
    waiting_by_reason: GaugeVec,
    kv_usage: GaugeVec,
    cache_info: GaugeVec,
    labels: [String; 2],
    pub preemptions: Counter,
    pub prompt_tokens: Counter,
    pub generation_tokens: Counter,
    pub prefix_queries: Counter,
    pub prefix_hits: Counter,
    success: [Counter; 5],
    pub iteration_tokens: Histogram,
    pub ttft: Histogram,
    pub itl: Histogram,
    pub tpot: Histogram,
    pub e2e: Histogram,
    pub queue: Histogram,
    pub inference: Histogram,
    pub prefill: Histogram,
    pub decode: Histogram,
    pub prompt_len: Histogram,
    pub generation_len: Histogram,
}

/// Scheduler state read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineGauges {
    pub running: usize,
    pub waiting: usize,
    pub kv_usage: f64,
}

impl EngineMetrics {
    /// `legacy_names` exposes the pre-0.9/0.11 names `vllm:gpu_cache_usage_perc` and
    /// `vllm:time_per_output_token_seconds` instead of their successors, for testing readers
    /// against older engines.
    pub fn new(model: &str, max_model_len: u64, kv_cache_tokens: u64, legacy_names: bool) -> Self {
        let labels = [model.to_string(), "0".to_string()];
        let lv = [labels[0].as_str(), labels[1].as_str()];
        let counter = |spec: &'static MetricSpec| Arc::new(CounterVec::new(spec));
        let hist = |spec: &'static MetricSpec| Arc::new(HistogramVec::new(spec));
        let buckets: &'static [f64] =
            Box::leak(vllm::length_buckets(max_model_len).into_boxed_slice());
        // Length histograms' buckets depend on max_model_len, as in vLLM; the spec is built once
        // per simulator.
        let length_spec = |name, help| -> &'static MetricSpec {
            Box::leak(Box::new(spec(name, help, H, L, buckets)))
        };
        let prompt_len_spec =
            length_spec(vllm::REQUEST_PROMPT_TOKENS, "Number of prefill tokens processed.");
        let gen_len_spec =
            length_spec(vllm::REQUEST_GENERATION_TOKENS, "Number of generation tokens processed.");

        let preemptions = counter(&PREEMPTIONS);
        let prompt_tokens = counter(&PROMPT_TOKENS);
        let generation_tokens = counter(&GENERATION_TOKENS);
        let success = counter(&SUCCESS);
        let prefix_queries = counter(&PREFIX_QUERIES);
        let prefix_hits = counter(&PREFIX_HITS);
        let hists: Vec<Arc<HistogramVec>> = [
            &ITERATION_TOKENS,
            &TTFT,
            if legacy_names { &TPOT_LEGACY } else { &ITL },
            &TPOT,
            &E2E,
            &QUEUE,
            &INFERENCE,
            &PREFILL,
            &DECODE,
            prompt_len_spec,
            gen_len_spec,
        ]
        .into_iter()
        .map(hist)
        .collect();
        let h = |i: usize| hists[i].with(&lv);
        let reason = |r: &str| success.with(&[lv[0], lv[1], r]);
        let cache_info = GaugeVec::new(&CACHE_INFO);
        let blocks = (kv_cache_tokens / 16).to_string();
        cache_info.set(&["16", "0", &blocks], 1.0);

        let metrics = EngineMetrics {
            preemptions: preemptions.with(&lv),
            prompt_tokens: prompt_tokens.with(&lv),
            generation_tokens: generation_tokens.with(&lv),
            prefix_queries: prefix_queries.with(&lv),
            prefix_hits: prefix_hits.with(&lv),
            success: [
                reason("stop"),
                reason("length"),
                reason("abort"),
                reason("error"),
                reason("repetition"),
            ],
            iteration_tokens: h(0),
            ttft: h(1),
            itl: h(2),
            tpot: h(3),
            e2e: h(4),
            queue: h(5),
            inference: h(6),
            prefill: h(7),
            decode: h(8),
            prompt_len: h(9),
            generation_len: h(10),
            running: GaugeVec::new(&RUNNING),
            waiting: GaugeVec::new(&WAITING),
            waiting_by_reason: GaugeVec::new(&WAITING_BY_REASON),
            kv_usage: GaugeVec::new(if legacy_names { &GPU_CACHE_USAGE } else { &KV_USAGE }),
            cache_info,
            labels,
            families: Vec::new(),
        };
        let mut families: Vec<Arc<dyn Encode>> = vec![
            preemptions,
            prompt_tokens,
            generation_tokens,
            prefix_queries,
            prefix_hits,
            success,
        ];
        families.extend(hists.into_iter().map(|h| h as Arc<dyn Encode>));
        EngineMetrics { families, ..metrics }
    }

    pub fn finished(&self, reason: FinishReason) {
        let i = match reason {
            FinishReason::Stop => 0,
            FinishReason::Length => 1,
            FinishReason::Abort => 2,
            FinishReason::Error => 3,
        };
        self.success[i].inc();
    }

    pub fn finished_count(&self, reason: FinishReason) -> f64 {
        self.success
            .iter()
            .zip(["stop", "length", "abort", "error"])
            .find(|(_, r)| *r == reason.as_str())
            .map(|(c, _)| c.get())
            .unwrap_or(0.0)
    }

    /// Renders the whole exposition: engine gauges from `gauges`, then every family.
    pub fn render(&self, format: Format, gauges: EngineGauges) -> String {
        let lv = [self.labels[0].as_str(), self.labels[1].as_str()];
        self.running.set(&lv, gauges.running as f64);
        self.waiting.set(&lv, gauges.waiting as f64);
        // The simulator only ever waits for capacity (no LoRA budget, no KV transfer).
        self.waiting_by_reason.set(&[lv[0], lv[1], "capacity"], gauges.waiting as f64);
        self.waiting_by_reason.set(&[lv[0], lv[1], "deferred"], 0.0);
        self.kv_usage.set(&lv, gauges.kv_usage);
        let mut sink = MetricSink::new(format);
        self.running.encode(&mut sink);
        self.waiting.encode(&mut sink);
        self.waiting_by_reason.encode(&mut sink);
        self.kv_usage.encode(&mut sink);
        self.cache_info.encode(&mut sink);
        for family in &self.families {
            family.encode(&mut sink);
        }
        process::encode(&mut sink);
        sink.render()
    }
}

/// `process_*` families as Python's prometheus_client exposes them (from `/proc/self`).
pub mod process {
    use super::*;

    static RESIDENT: MetricSpec =
        spec("process_resident_memory_bytes", "Resident memory size in bytes.", G, &[], &[]);
    static VIRTUAL: MetricSpec =
        spec("process_virtual_memory_bytes", "Virtual memory size in bytes.", G, &[], &[]);
    static START: MetricSpec = spec(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        G,
        &[],
        &[],
    );
    static CPU: MetricSpec = spec(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        C,
        &[],
        &[],
    );
    static OPEN_FDS: MetricSpec =
        spec("process_open_fds", "Number of open file descriptors.", G, &[], &[]);

    /// Linux clock ticks per second (`getconf CLK_TCK`), fixed at 100 on every mainstream
    /// architecture.
    const TICKS: f64 = 100.0;

    /// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
    pub fn resident_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub fn encode(sink: &mut MetricSink) {
        if let Some(rss) = resident_bytes() {
            sink.gauge(&RESIDENT, &[], rss as f64);
        }
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
        // Fields after the parenthesised command name; field 3 (state) is index 0 here.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let Some(vsize) = num(20) {
            sink.gauge(&VIRTUAL, &[], vsize);
        }
        if let (Some(utime), Some(stime)) = (num(11), num(12)) {
            sink.counter(&CPU, &[], (utime + stime) / TICKS);
        }
        if let (Some(start_ticks), Some(boot)) = (num(19), boot_time()) {
            sink.gauge(&START, &[], boot + start_ticks / TICKS);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            sink.gauge(&OPEN_FDS, &[], dir.count() as f64);
        }
    }

    fn boot_time() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("btime "))?;
        line[6..].trim().parse().ok()
    }
}
