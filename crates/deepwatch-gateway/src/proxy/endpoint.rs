//! The routes the proxy serves, as a type: the `endpoint` label, the fault-rule key and what a
//! route's body holds all come from here.

/// One proxied OpenAI route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Models,
}

impl Endpoint {
    /// The route path, also the `endpoint` label value.
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Models => "/v1/models",
        }
    }

    /// The request has a JSON body naming a model (every route but the model list).
    pub fn has_body(self) -> bool {
        self != Endpoint::Models
    }

    /// The answer is generated text (scanned, counted in output distributions); embeddings
    /// and the model list are not.
    pub fn generates(self) -> bool {
        matches!(self, Endpoint::Chat | Endpoint::Completions)
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn paths_are_the_routes_fault_rules_may_name() {
        let all = [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings, Endpoint::Models];
        let paths: Vec<&str> = all.iter().map(|e| e.path()).collect();
        assert_eq!(paths, deepwatch_core::config::gateway::ROUTES);
    }
}
