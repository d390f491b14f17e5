//! Prices of tokens and budgets, shared by the sections that turn tokens into money: the
//! gateway's spend counters (`gateway.prices`) and tenant budgets (`gateway.daily_budgets`).
//! A price is per million tokens in one currency the operator picks; a prompt token served
//! from the engine's prefix cache may cost less than one computed.

use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one model's tokens cost, per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// A prompt token the engine computed.
    pub prompt_per_million: f64,
    /// A prompt token served from the prefix cache (`usage.prompt_tokens_details.cached_tokens`);
    /// unset = `prompt_per_million` (no discount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_prompt_per_million: Option<f64>,
    /// A completion token (reasoning included).
    pub completion_per_million: f64,
}

/// Tokens of one request, as priced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PricedTokens {
    /// All prompt tokens, cached ones included (as `usage.prompt_tokens` counts them).
    pub prompt: u64,
    /// Of `prompt`, those served from the prefix cache.
    pub cached_prompt: u64,
    pub completion: u64,
}

impl ModelPrice {
    /// What `tokens` cost.
    pub fn cost(&self, tokens: PricedTokens) -> f64 {
        let cached = tokens.cached_prompt.min(tokens.prompt);
        let computed = tokens.prompt - cached;
        let cached_price = self.cached_prompt_per_million.unwrap_or(self.prompt_per_million);
        (computed as f64 * self.prompt_per_million
            + cached as f64 * cached_price
            + tokens.completion as f64 * self.completion_per_million)
            / 1e6
    }
}

/// Model name -> price.
pub type Prices = BTreeMap<String, ModelPrice>;

/// Prices must be finite and non-negative; a cached prompt token may not cost more than a
/// computed one (that is a typo, not a tariff).
pub fn validate_prices(prices: &Prices, path: &Path, problems: &mut Problems) {
    for (model, price) in prices {
        let at = path.key(model);
        if model.trim().is_empty() {
            problems.push(path, "model names must not be empty");
        }
        let mut fields = vec![
            ("prompt_per_million", price.prompt_per_million),
            ("completion_per_million", price.completion_per_million),
        ];
        if let Some(cached) = price.cached_prompt_per_million {
            fields.push(("cached_prompt_per_million", cached));
        }
        for (name, value) in fields {
            if !value.is_finite() || value < 0.0 {
                problems
                    .push(&at.field(name), format!("must be a non-negative number, got {value}"));
            }
        }
        if let Some(cached) = price.cached_prompt_per_million {
            if cached > price.prompt_per_million {
                problems.push(
                    &at.field("cached_prompt_per_million"),
                    format!(
                        "must not exceed prompt_per_million ({}), got {cached}",
                        price.prompt_per_million
                    ),
                );
            }
        }
    }
}

/// Budgets must be finite and positive (no budget = no entry).
pub fn validate_budgets(budgets: &BTreeMap<String, f64>, path: &Path, problems: &mut Problems) {
    for (tenant, budget) in budgets {
        if tenant.trim().is_empty() {
            problems.push(path, "tenant names must not be empty");
        }
        if !budget.is_finite() || *budget <= 0.0 {
            problems.push(&path.key(tenant), format!("must be a positive number, got {budget}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_prompt_tokens_cost_the_cached_price() {
        let p = ModelPrice {
            prompt_per_million: 0.5,
            cached_prompt_per_million: Some(0.125),
            completion_per_million: 2.0,
        };
        let t = PricedTokens { prompt: 1_000_000, cached_prompt: 400_000, completion: 250_000 };
        // 600k computed x 0.5 + 400k cached x 0.125 + 250k x 2.0, per million.
        assert!((p.cost(t) - (0.3 + 0.05 + 0.5)).abs() < 1e-12, "{}", p.cost(t));
        let no_discount = ModelPrice { cached_prompt_per_million: None, ..p };
        assert!((no_discount.cost(t) - (0.5 + 0.5)).abs() < 1e-12);
    }

    #[test]
    fn bad_prices_name_model_and_field() {
        let prices: Prices = toml::from_str(
            r#"
            "m1" = { prompt_per_million = -1.0, completion_per_million = 2.0 }
            "m2" = { prompt_per_million = 1.0, cached_prompt_per_million = 3.0, completion_per_million = 1.0 }
            "#,
        )
        .unwrap();
        let mut problems = Problems::default();
        validate_prices(&prices, &Path::root("gateway").field("prices"), &mut problems);
        let text = problems.to_string();
        assert!(
            text.contains("gateway.prices.m1.prompt_per_million: must be a non-negative"),
            "{text}"
        );
        assert!(
            text.contains("gateway.prices.m2.cached_prompt_per_million: must not exceed"),
            "{text}"
        );
        let budgets: BTreeMap<String, f64> = toml::from_str(r#""team-a" = 0.0"#).unwrap();
        validate_budgets(&budgets, &Path::root("gateway").field("daily_budgets"), &mut problems);
        let text = problems.to_string();
        assert!(text.contains("gateway.daily_budgets.team-a: must be a positive number"), "{text}");
        let missing = toml::from_str::<Prices>(r#""m" = { prompt_per_million = 1.0 }"#);
        assert!(missing.unwrap_err().to_string().contains("completion_per_million"));
    }
}
