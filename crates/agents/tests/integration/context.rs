//! Building contexts from repository records, and their bounds.

use chrono::Utc;
use serde_json::json;
use strata_agents::{AgentContext, AgentError, AgentKind, DeltaSink, OfflineProvider, run_agent};
use strata_domain::model::{
    BrandGuidelines, Campaign, CampaignStatus, Client, Organization, Persona,
};
use strata_domain::{CampaignId, ClientId, OrgId, OrgType, PersonaId};
use tokio_util::sync::CancellationToken;

use crate::support::nike;

struct Agency {
    org: Organization,
    nike: Client,
    adidas: Client,
    campaign: Campaign,
}

fn agency() -> Agency {
    let org_id = OrgId::generate();
    let client = |name: &str| Client {
        id: ClientId::generate(),
        org_id,
        name: name.to_owned(),
        slug: name.to_lowercase(),
        archived_at: None,
        created_at: Utc::now(),
        branding: json!({}),
    };
    let nike = client("Nike");
    let adidas = client("Adidas");
    let campaign = Campaign {
        id: CampaignId::generate(),
        org_id,
        client_id: Some(nike.id),
        name: "Just Do It 2026".to_owned(),
        objective: Some("Grow sign-ups".to_owned()),
        status: CampaignStatus::Active,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    Agency {
        org: Organization {
            id: org_id,
            org_type: OrgType::Agency,
            name: "Stride Agency".to_owned(),
            slug: "stride".to_owned(),
            settings: json!({}),
            monthly_token_quota: None,
            require_mfa: false,
            retention_days: None,
            created_at: Utc::now(),
        },
        nike,
        adidas,
        campaign,
    }
}

fn persona(org_id: OrgId, client: &Client, name: &str) -> Persona {
    Persona {
        id: PersonaId::generate(),
        org_id,
        client_id: Some(client.id),
        name: name.to_owned(),
        description: None,
        attributes: json!({"channels": ["Strava"]}),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

#[test]
fn records_of_the_campaigns_client_make_a_context() {
    let a = agency();
    let guidelines = BrandGuidelines {
        org_id: a.org.id,
        client_id: Some(a.nike.id),
        content: json!({"tone": ["bold"]}),
        updated_at: Utc::now(),
    };
    let personas = [persona(a.org.id, &a.nike, "Marathon Maya")];

    let context = AgentContext::from_records(
        &a.org,
        Some(&a.nike),
        &a.campaign,
        Some(&guidelines),
        &personas,
        Some("Keep it short"),
    )
    .unwrap();

    assert_eq!(context.brand_name(), "Nike");
    assert_eq!(context.personas[0].name, "Marathon Maya");
    assert_eq!(context.brand_guidelines["tone"], json!(["bold"]));
}

#[test]
fn another_clients_records_are_refused() {
    let a = agency();
    let theirs = [persona(a.org.id, &a.adidas, "Streetwear Sam")];
    let error = AgentContext::from_records(&a.org, Some(&a.nike), &a.campaign, None, &theirs, None)
        .unwrap_err();
    assert_eq!(error.field, "personas[0]");

    let their_guidelines = BrandGuidelines {
        org_id: a.org.id,
        client_id: Some(a.adidas.id),
        content: json!({}),
        updated_at: Utc::now(),
    };
    let error = AgentContext::from_records(
        &a.org,
        Some(&a.nike),
        &a.campaign,
        Some(&their_guidelines),
        &[],
        None,
    )
    .unwrap_err();
    assert_eq!(error.field, "brand_guidelines");

    let error = AgentContext::from_records(&a.org, Some(&a.adidas), &a.campaign, None, &[], None)
        .unwrap_err();
    assert_eq!(error.field, "client");

    let mut other_org = a.org.clone();
    other_org.id = OrgId::generate();
    let error = AgentContext::from_records(&other_org, Some(&a.nike), &a.campaign, None, &[], None)
        .unwrap_err();
    assert_eq!(error.field, "campaign");
}

#[tokio::test]
async fn out_of_bounds_input_is_refused_before_any_provider_call() {
    let mut context = nike();
    context.instructions = Some("x".repeat(10_000));

    let error = run_agent(
        &OfflineProvider::new(),
        AgentKind::BrandVoice,
        &context,
        None,
        &DeltaSink::none(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();

    assert_eq!(error.code(), "INVALID_INPUT");
    assert!(matches!(&error, AgentError::InvalidInput(e) if e.field == "instructions"));

    let mut context = nike();
    context.campaign.name = "  ".to_owned();
    assert_eq!(context.validate().unwrap_err().field, "campaign.name");
}
