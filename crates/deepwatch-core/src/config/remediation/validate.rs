//! `validate()` of the `[remediation]` section: every problem reported with its path.

use super::*;
use crate::config::duration::{MAX_INTERVAL, MAX_TIMEOUT, MAX_WINDOW};

impl RemediationConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.non_empty(&path.field("state_dir"), &self.state_dir);
        if !self.public_url.is_empty() {
            problems.http_url(&path.field("public_url"), &self.public_url);
        }
        problems.range(&path.field("queue_capacity"), self.queue_capacity, 1, 1_000_000);
        problems.positive_duration(
            &path.field("action_timeout_secs"),
            self.action_timeout,
            MAX_TIMEOUT,
        );
        problems.positive_duration(
            &path.field("journal_retention_secs"),
            self.journal_retention,
            MAX_WINDOW,
        );
        let gw = path.field("gateway");
        problems.http_url(&gw.field("url"), &self.gateway.url);
        problems.bearer_token(&gw.field("token"), &self.gateway.token);
        problems.bearer_token(&path.field("webhook_token"), &self.webhook_token);
        problems.duration(
            &gw.field("timeout_ms"),
            self.gateway.timeout,
            Duration::from_millis(1),
            Duration::from_secs(600),
        );
        self.validate_scaling(&path.field("scaling"), problems);
        let mut actions = HashSet::new();
        for (i, a) in self.actions.iter().enumerate() {
            let at = path.field("actions").index(i);
            problems.non_empty(&at.field("name"), &a.name);
            if !a.name.is_empty() && !actions.insert(a.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate action name {:?}", a.name));
            }
            a.validate(&at, problems);
        }
        let mut policies = HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let at = path.field("policies").index(i);
            problems.non_empty(&at.field("name"), &p.name);
            if !p.name.is_empty() && !policies.insert(p.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate policy name {:?}", p.name));
            }
            if p.matchers.is_empty() {
                problems.push(&at.field("matchers"), "needs at least one matcher");
            }
            for (j, m) in p.matchers.iter().enumerate() {
                if let Err(e) = Matcher::parse(m) {
                    problems.push(&at.field("matchers").index(j), e);
                }
            }
            if p.actions.is_empty() {
                problems.push(&at.field("actions"), "needs at least one action");
            }
            for (j, name) in p.actions.iter().enumerate() {
                if !actions.contains(name.as_str()) {
                    problems.push(
                        &at.field("actions").index(j),
                        format!("no [[remediation.actions]] is named {name:?}"),
                    );
                }
            }
        }
    }

    fn validate_scaling(&self, path: &Path, problems: &mut Problems) {
        let s = &self.scaling;
        problems.positive(&path.field("min_replicas"), s.min_replicas);
        if s.max_replicas < s.min_replicas {
            problems.push(
                &path.field("max_replicas"),
                format!(
                    "must be at least min_replicas ({}), got {}",
                    s.min_replicas, s.max_replicas
                ),
            );
        }
        problems.range(&path.field("target_load_ratio"), s.target_load_ratio, 0.05, 1.0);
        problems.range(&path.field("scale_in_below_ratio"), s.scale_in_below_ratio, 0.05, 0.99);
        problems.range(&path.field("peak_factor"), s.peak_factor, 1.0, 10.0);
        problems.positive(&path.field("replica_capacity"), s.replica_capacity);
        problems.non_empty(&path.field("demand_query"), &s.demand_query);
        problems.non_empty(&path.field("replicas_query"), &s.replicas_query);
        problems.positive_duration(&path.field("history_step_secs"), s.history_step, MAX_INTERVAL);
        problems.duration(&path.field("history_secs"), s.history, Duration::ZERO, MAX_WINDOW);
        problems.duration(
            &path.field("plan_interval_secs"),
            s.plan_interval,
            Duration::ZERO,
            MAX_INTERVAL,
        );
        if s.history < 2 * s.history_step {
            problems.push(
                &path.field("history_secs"),
                format!(
                    "must cover at least two steps ({} s), got {}",
                    (2 * s.history_step).as_secs(),
                    s.history.as_secs()
                ),
            );
        }
    }
}

impl ActionConfig {
    fn validate(&self, at: &Path, problems: &mut Problems) {
        use ActionKind::*;
        let kind = self.kind;
        let mut unused = |field: &str, set: bool, used_by: &[ActionKind]| {
            if set && !used_by.contains(&kind) {
                problems.push(&at.field(field), format!("is not used by kind {:?}", kind.as_str()));
            }
        };
        unused("pool", self.pool.is_some(), &[Failover, Scale]);
        unused("target", self.target.is_some(), &[Scale]);
        unused("spare_upstreams", self.spare_upstreams.is_some(), &[Scale]);
        unused("step", self.step.is_some(), &[Scale]);
        unused("load_query", self.load_query.is_some(), &[Scale]);
        unused("namespace", self.namespace.is_some(), &[Scale]);
        unused("object", self.object.is_some(), &[Scale]);
        unused("kubeconfig", self.kubeconfig.is_some(), &[Scale]);
        unused("max_tokens_cap", self.max_tokens_cap.is_some(), &[Degrade]);
        unused("tenants", self.tenants.is_some(), &[Degrade]);
        unused("requests_per_second", self.requests_per_second.is_some(), &[Degrade]);
        unused("command", self.command.is_some(), &[RestartHook]);
        unused("timeout_secs", self.timeout.is_some(), &[RestartHook]);
        problems.duration(&at.field("cooldown_secs"), self.cooldown, Duration::ZERO, MAX_WINDOW);
        match kind {
            Failover => {
                problems.non_empty(&at.field("pool"), self.pool.as_deref().unwrap_or(""));
            }
            Scale => self.validate_scale(at, problems),
            Degrade => {
                if self.max_tokens_cap.is_none() && self.tenants.is_none() {
                    problems.push(at, "a degrade action needs max_tokens_cap, tenants or both");
                }
                if let Some(cap) = self.max_tokens_cap {
                    problems.positive(&at.field("max_tokens_cap"), cap);
                }
                if self.tenants.as_ref().is_some_and(|t| t.is_empty()) {
                    problems.push(&at.field("tenants"), "must name at least one tenant");
                }
                if self.tenants.is_some() != self.requests_per_second.is_some() {
                    problems.push(at, "tenants and requests_per_second go together");
                }
                if let Some(rps) = self.requests_per_second {
                    problems.positive(&at.field("requests_per_second"), rps);
                }
            }
            Rollback => {}
            RestartHook => {
                let command = self.command.as_deref().unwrap_or(&[]);
                if command.first().is_none_or(|p| p.trim().is_empty()) {
                    problems.push(&at.field("command"), "must name a program to run");
                }
                problems.positive_duration(
                    &at.field("timeout_secs"),
                    self.timeout.unwrap_or(Duration::from_secs(60)),
                    MAX_TIMEOUT,
                );
            }
        }
    }

    fn validate_scale(&self, at: &Path, problems: &mut Problems) {
        if let Some(step) = self.step {
            problems.range(&at.field("step"), step, 1, 100);
        }
        if self.load_query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            problems.push(&at.field("load_query"), "must not be empty (leave it out instead)");
        }
        match self.target.unwrap_or_default() {
            ScaleTarget::GatewayPool => {
                problems.non_empty(&at.field("pool"), self.pool.as_deref().unwrap_or(""));
                let spares = self.spare_upstreams.as_deref().unwrap_or(&[]);
                if spares.is_empty() {
                    problems.push(&at.field("spare_upstreams"), "must list at least one URL");
                }
                if self.namespace.is_some() || self.object.is_some() || self.kubeconfig.is_some() {
                    problems.push(
                        at,
                        "namespace, object and kubeconfig are for targets kubernetes and keda",
                    );
                }
                for (i, url) in spares.iter().enumerate() {
                    problems.http_url(&at.field("spare_upstreams").index(i), url);
                }
            }
            ScaleTarget::Kubernetes | ScaleTarget::Keda => {
                problems.non_empty(&at.field("namespace"), self.namespace.as_deref().unwrap_or(""));
                problems.non_empty(&at.field("object"), self.object.as_deref().unwrap_or(""));
                if self.pool.is_some() || self.spare_upstreams.is_some() {
                    problems.push(at, "pool and spare_upstreams are for target \"gateway_pool\"");
                }
            }
        }
    }
}
