//! A leaking process: run a configured restart command (no shell) with a timeout. The alert's
//! labels reach the command as environment variables, never spliced into its arguments, so a
//! label value cannot inject anything.

use super::{Action, ActionContext, ActionError, Plan, PlanError};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::time::Duration;

/// Output kept in the audit log, per stream.
const OUTPUT_LIMIT: usize = 2048;

pub struct RestartHook {
    name: String,
    command: Vec<String>,
    timeout: Duration,
}

impl RestartHook {
    pub fn new(config: &ActionConfig) -> Result<RestartHook, String> {
        let command = config.command.clone().unwrap_or_default();
        if command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err("needs a command".into());
        }
        let timeout = config.timeout.unwrap_or(Duration::from_secs(60));
        Ok(RestartHook { name: config.name.clone(), command, timeout })
    }

    /// `DEEPWATCH_LABEL_<NAME>` for every label (name upper-cased, non-alphanumerics as `_`).
    pub fn environment(ctx: &ActionContext) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = ctx
            .alert
            .labels
            .iter()
            .map(|(k, v)| {
                let name: String = k
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                    .collect();
                (format!("DEEPWATCH_LABEL_{name}"), v.clone())
            })
            .collect();
        env.push(("DEEPWATCH_ALERTNAME".into(), ctx.alert.alertname().to_string()));
        env.push(("DEEPWATCH_FINGERPRINT".into(), ctx.alert.fingerprint()));
        env.push(("DEEPWATCH_POLICY".into(), ctx.policy.clone()));
        env.push(("DEEPWATCH_REASON".into(), ctx.reason.clone()));
        env
    }

    async fn run(&self, ctx: &ActionContext) -> Result<String, ActionError> {
        let mut cmd = tokio::process::Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .envs(Self::environment(ctx))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Err(_) => return Err(ActionError::Timeout(self.timeout)),
            Ok(Err(e)) => {
                return Err(ActionError::Failed(format!("cannot run {:?}: {e}", self.command[0])))
            }
            Ok(Ok(output)) => output,
        };
        let clip = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let mut end = text.len().min(OUTPUT_LIMIT);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_string()
        };
        let (stdout, stderr) = (clip(&output.stdout), clip(&output.stderr));
        if output.status.success() {
            Ok(format!("{} exited 0; stdout: {stdout:?}", self.command.join(" ")))
        } else {
            Err(ActionError::Failed(format!(
                "{} exited with {}; stderr: {stderr:?}",
                self.command.join(" "),
                output.status
            )))
        }
    }
}

impl Action for RestartHook {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ActionKind {
        ActionKind::RestartHook
    }

    fn plan<'a>(&'a self, ctx: &'a ActionContext) -> BoxFuture<'a, Result<Plan, PlanError>> {
        let target = ["process", "instance", "engine"]
            .iter()
            .filter_map(|l| ctx.alert.labels.get(*l).map(|v| format!("{l}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
        let plan = Plan {
            summary: format!("run {:?} for {}", self.command.join(" "), target),
            request: json!({"command": self.command, "timeout_secs": self.timeout.as_secs()}),
        };
        async move { Ok(plan) }.boxed()
    }

    fn execute<'a>(
        &'a self,
        ctx: &'a ActionContext,
        _plan: &'a Plan,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        self.run(ctx).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Alert;

    fn hook(command: &[&str], timeout_secs: u64) -> RestartHook {
        RestartHook::new(&ActionConfig {
            name: "h".into(),
            kind: ActionKind::RestartHook,
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            timeout: Some(Duration::from_secs(timeout_secs)),
            ..ActionConfig::default()
        })
        .unwrap()
    }

    fn ctx() -> ActionContext {
        let mut alert = Alert::default();
        alert.labels.insert("alertname".into(), "Leak".into());
        alert.labels.insert("process".into(), "vllm; rm -rf /".into());
        ActionContext::new(&alert, "leak")
    }

    #[tokio::test]
    async fn labels_arrive_as_environment_not_as_arguments() {
        let h = hook(&["sh", "-c", "printf '%s' \"$DEEPWATCH_LABEL_PROCESS\""], 10);
        let out = h.run(&ctx()).await.unwrap();
        assert!(out.contains("stdout: \"vllm; rm -rf /\""), "{out}");
    }

    #[tokio::test]
    async fn a_failing_command_fails_with_its_stderr() {
        let h = hook(&["sh", "-c", "echo boom >&2; exit 3"], 10);
        let err = h.run(&ctx()).await.unwrap_err().to_string();
        assert!(err.contains("exit status: 3") && err.contains("boom"), "{err}");
        let err = hook(&["/nonexistent/restart"], 10).run(&ctx()).await.unwrap_err().to_string();
        assert!(err.contains("cannot run"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_timeout() {
        let h = hook(&["sleep", "30"], 1);
        let started = tokio::time::Instant::now();
        let err = h.run(&ctx()).await.unwrap_err();
        assert!(matches!(err, ActionError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
