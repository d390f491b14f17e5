//! Bucket layouts shared by several histograms. Latency thresholds in rules must sit on these
//! edges (the rules generator checks), so change them only together with the spec defaults.

/// Request and stream latencies, 5 ms to 10 min. Has edges at the default alert thresholds
/// (150/180/200/250 ms, 1.5 s, 2 s).
pub const LATENCY_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.18, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5,
    2.0, 2.5, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Per-token latencies (TPOT, inter-token gap), 1 ms to 5 s.
pub const TOKEN_LATENCY_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0,
];

/// Gateway overhead: sub-millisecond resolution, 10 µs to 100 ms.
pub const OVERHEAD_SECONDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1,
];

/// Fast internal operations (collector runs, scrapes, probes): 100 µs to 10 s.
pub const FAST_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Network round trips between nodes: 50 µs to 1 s, with the 1 ms alert edge.
pub const NETWORK_SECONDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0,
];

/// Token counts per request (prompt or output length): 1-2-5 series up to 128k.
pub const TOKEN_COUNT: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
    50000.0, 131072.0,
];

/// Shares in 0..1 (for example the reasoning share of a response's tokens).
pub const RATIO: &[f64] = &[0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0];
