//! The provider used when no model is configured: it runs no model and
//! calls nothing. It answers an agent's request with the draft the agent
//! attached ([`CompletionRequest::offline_draft`]), built deterministically
//! from the run's own context, streamed in a few pieces like a real model.

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Completion, CompletionRequest, DeltaSink, LlmProvider, ProviderError, Usage};

/// How many pieces an answer is streamed in.
const PIECES: usize = 16;

/// The offline provider: deterministic, fast, no network.
#[derive(Clone, Debug, Default)]
pub struct OfflineProvider {
    /// A pause before each piece after the first.
    piece_delay: Duration,
}

impl OfflineProvider {
    /// The model name it reports.
    pub const MODEL: &'static str = "strata-offline-1";

    /// A pause between pieces short enough not to be in the way and long
    /// enough for an answer to be seen streaming (about a second in all).
    pub const DEFAULT_PIECE_DELAY: Duration = Duration::from_millis(60);

    /// The provider, streaming its pieces without pausing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The provider, pausing `delay` between pieces, as a model would.
    pub fn with_piece_delay(delay: Duration) -> Self {
        Self { piece_delay: delay }
    }
}

#[async_trait]
impl LlmProvider for OfflineProvider {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn default_model(&self) -> &str {
        Self::MODEL
    }

    async fn complete(
        &self,
        request: &CompletionRequest,
        sink: &DeltaSink,
        cancel: &CancellationToken,
    ) -> Result<Completion, ProviderError> {
        let draft = request
            .offline_draft
            .as_ref()
            .ok_or_else(|| ProviderError::Unavailable {
                reason: "no model is configured, and the offline provider only answers agent runs"
                    .to_owned(),
            })?;
        let text = serde_json::to_string_pretty(draft).map_err(|_| ProviderError::Protocol {
            reason: "the offline draft does not serialize".to_owned(),
        })?;
        for (i, piece) in pieces(&text, PIECES).into_iter().enumerate() {
            if i > 0 && !self.piece_delay.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => return Err(ProviderError::Cancelled),
                    () = tokio::time::sleep(self.piece_delay) => {}
                }
            }
            if cancel.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            sink.send(piece, cancel).await?;
            tokio::task::yield_now().await;
        }
        if cancel.is_cancelled() {
            return Err(ProviderError::Cancelled);
        }
        Ok(Completion {
            usage: Usage::estimate(&request.messages, &text),
            text,
            model: request.model.clone(),
            finish_reason: Some("stop".to_owned()),
        })
    }
}

/// `text` cut into about `n` pieces of similar length, on character
/// boundaries.
fn pieces(text: &str, n: usize) -> Vec<&str> {
    let size = text.len().div_ceil(n.max(1)).max(1);
    let mut out = Vec::with_capacity(n);
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_on_char_boundaries() {
        for text in ["", "a", "héllo wörld, ünïcödé", &"x".repeat(1000)] {
            let parts = pieces(text, PIECES);
            assert_eq!(parts.concat(), text);
            assert!(parts.len() <= PIECES + 1);
        }
    }

    #[tokio::test]
    async fn a_request_without_a_draft_is_refused() {
        let request = CompletionRequest {
            model: OfflineProvider::MODEL.to_owned(),
            messages: Vec::new(),
            temperature: None,
            max_tokens: None,
            offline_draft: None,
        };
        let result = OfflineProvider::new()
            .complete(&request, &DeltaSink::none(), &CancellationToken::new())
            .await;
        assert!(matches!(result, Err(ProviderError::Unavailable { .. })));
    }
}
