//! The offline provider: deterministic drafts that pass validation.

use serde_json::Value;
use strata_agents::{
    AgentContext, AgentError, AgentKind, AgentOutput, DeltaSink, OfflineProvider, build_provider,
    run_agent,
};
use tokio_util::sync::CancellationToken;

use crate::support::{adidas, bare_sme, drain, nike};

/// Every string in a JSON value, joined.
fn all_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(all_text).collect::<Vec<_>>().join("\n"),
        Value::Object(map) => map.values().map(all_text).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

async fn offline_run(
    kind: AgentKind,
    context: &AgentContext,
) -> (strata_agents::AgentResult, Vec<String>) {
    let (sink, mut rx) = DeltaSink::channel(64);
    let result = run_agent(
        &OfflineProvider::new(),
        kind,
        context,
        None,
        &sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} failed offline: {e}"));
    (result, drain(&mut rx))
}

#[tokio::test]
async fn every_agent_produces_valid_output_offline() {
    for context in [nike(), adidas(), bare_sme()] {
        for kind in AgentKind::ALL {
            let (result, deltas) = offline_run(kind, &context).await;

            assert_eq!(result.kind, kind);
            assert_eq!(result.output.kind(), kind);
            assert_eq!(result.value["version"], 1);
            assert_eq!(result.value["kind"], kind.as_str());
            assert_eq!(
                AgentOutput::from_value(&result.value),
                Ok(result.output.clone())
            );
            assert!(deltas.len() > 1, "{kind} streamed in one piece");
            assert_eq!(
                AgentOutput::parse(kind, &deltas.concat()),
                Ok(result.output.clone())
            );
            assert_eq!(result.model, OfflineProvider::MODEL);
            assert!(result.usage.prompt_tokens > 100 && result.usage.completion_tokens > 20);
        }
    }
}

#[tokio::test]
async fn offline_runs_are_deterministic() {
    for kind in AgentKind::ALL {
        let (first, first_deltas) = offline_run(kind, &nike()).await;
        let (second, second_deltas) = offline_run(kind, &nike()).await;

        assert_eq!(first.value, second.value);
        assert_eq!(first_deltas, second_deltas);
        assert_eq!(first.usage, second.usage);
    }
}

#[tokio::test]
async fn offline_drafts_use_the_context_and_nothing_else() {
    for kind in AgentKind::ALL {
        let (nike_run, _) = offline_run(kind, &nike()).await;
        let (adidas_run, _) = offline_run(kind, &adidas()).await;
        let nike_text = all_text(&nike_run.value);
        let adidas_text = all_text(&adidas_run.value);

        assert!(nike_text.contains("Nike"), "{kind}: {nike_text}");
        assert!(!nike_text.contains("Adidas"), "{kind}: {nike_text}");
        assert!(adidas_text.contains("Adidas"), "{kind}: {adidas_text}");
        assert!(!adidas_text.contains("Nike"), "{kind}: {adidas_text}");
        assert!(nike_text.contains("Just Do It 2026"), "{kind}: {nike_text}");
        assert!(
            adidas_text.contains("Impossible Is Nothing Relaunch"),
            "{kind}: {adidas_text}"
        );
    }
    let (personas, _) = offline_run(AgentKind::PersonaBuilder, &nike()).await;
    assert_eq!(personas.value["personas"][0]["name"], "Marathon Maya");
    assert_eq!(
        personas.value["personas"][0]["channels"],
        serde_json::json!(["Instagram", "Strava"])
    );
    let (voice, _) = offline_run(AgentKind::BrandVoice, &nike()).await;
    assert_eq!(
        voice.value["tone"],
        serde_json::json!(["bold", "inspiring", "direct"])
    );
    let (sme, _) = offline_run(AgentKind::CampaignPlanner, &bare_sme()).await;
    assert!(all_text(&sme.value).contains("Sourdough Saturdays"));
}

#[tokio::test]
async fn the_default_provider_is_offline_and_honours_cancellation() {
    let provider = build_provider(None).unwrap();
    assert_eq!(provider.name(), "offline");
    let cancel = CancellationToken::new();
    cancel.cancel();

    let result = run_agent(
        provider.as_ref(),
        AgentKind::BusinessStrategy,
        &nike(),
        None,
        &DeltaSink::none(),
        &cancel,
    )
    .await;

    assert_eq!(result.unwrap_err(), AgentError::Cancelled);
}
