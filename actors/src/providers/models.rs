//! Which models clients may ask for: the optional per-provider allow-lists, the default model a
//! request without one gets, and what `GET /providers` shows.

use serde::Serialize;

use super::{ProviderError, ProviderKind, Providers};

/// What `GET /providers` shows for one usable provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    /// The name to send as `provider` in `POST /chat/stream`.
    #[schema(value_type = ProviderKind)]
    pub name: &'static str,
    /// The model a chat without `model` gets.
    pub default_model: String,
    /// The models clients may choose; empty: any.
    pub models: Vec<String>,
}

impl Providers {
    /// The operator's allow-list for `kind`; empty: any model.
    pub fn allowed_models(&self, kind: ProviderKind) -> &[String] {
        let settings = &*self.settings;
        match kind {
            ProviderKind::Echo => &[],
            ProviderKind::OpenAi => &settings.openai_models,
            ProviderKind::Gemini => &settings.gemini_models,
            ProviderKind::Anthropic => &settings.anthropic_models,
            ProviderKind::Ollama => &settings.ollama_models,
        }
    }

    /// The model a request without one gets: the built-in default, unless the allow-list leaves
    /// it out, then the first allowed model.
    pub fn effective_default_model(&self, kind: ProviderKind) -> String {
        let builtin = Self::default_model(kind);
        match self.allowed_models(kind) {
            [first, ..] if !self.allowed_models(kind).iter().any(|m| m == builtin) => first.clone(),
            _ => builtin.to_owned(),
        }
    }

    /// Checks `requested` against the allow-list before anything goes upstream. Returns the
    /// model to ask for: `requested`, or `None` (the built-in default) when none was asked for,
    /// or the first allowed model when the allow-list leaves the built-in default out.
    pub fn choose_model(
        &self,
        kind: ProviderKind,
        requested: Option<String>,
    ) -> Result<Option<String>, ProviderError> {
        let allowed = self.allowed_models(kind);
        match requested {
            Some(model) if allowed.is_empty() || allowed.contains(&model) => Ok(Some(model)),
            Some(model) => Err(ProviderError::ModelNotAllowed {
                provider: kind.name(),
                model,
                allowed: allowed.join(", "),
            }),
            None if allowed.is_empty() => Ok(None),
            None => {
                let default = self.effective_default_model(kind);
                Ok((default != Self::default_model(kind)).then_some(default))
            }
        }
    }

    /// The providers this server can use, with their default and allowed models.
    pub fn available(&self) -> Vec<ProviderInfo> {
        ProviderKind::ALL
            .into_iter()
            .filter(|kind| self.check_configured(*kind).is_ok())
            .map(|kind| ProviderInfo {
                name: kind.name(),
                default_model: self.effective_default_model(kind),
                models: self.allowed_models(kind).to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderSettings;

    fn providers(openai_models: &[&str]) -> Providers {
        Providers::new(ProviderSettings {
            openai_api_key: Some("sk-test".into()),
            openai_models: openai_models.iter().map(|m| m.to_string()).collect(),
            ..ProviderSettings::default()
        })
        .expect("valid settings")
    }

    #[test]
    fn an_empty_list_allows_any_model() {
        let any = providers(&[]);
        let chosen = any.choose_model(ProviderKind::OpenAi, Some("whatever".into()));
        assert_eq!(chosen.ok().flatten().as_deref(), Some("whatever"));
        assert!(matches!(
            any.choose_model(ProviderKind::OpenAi, None),
            Ok(None)
        ));
    }

    #[test]
    fn a_list_without_the_builtin_default_moves_the_default() {
        let listed = providers(&["gpt-4o", "o3"]);
        assert_eq!(
            listed.effective_default_model(ProviderKind::OpenAi),
            "gpt-4o"
        );
        let chosen = listed.choose_model(ProviderKind::OpenAi, None);
        assert_eq!(chosen.ok().flatten().as_deref(), Some("gpt-4o"));
        let refused = listed.choose_model(ProviderKind::OpenAi, Some("gpt-4o-mini".into()));
        assert!(matches!(
            refused,
            Err(ProviderError::ModelNotAllowed { .. })
        ));
        let with_default = providers(&["o3", "gpt-4o-mini"]);
        assert!(matches!(
            with_default.choose_model(ProviderKind::OpenAi, None),
            Ok(None)
        ));
    }
}
