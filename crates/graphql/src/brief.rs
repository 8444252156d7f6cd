//! `Campaign.brief`: a self-contained HTML page a client can be handed —
//! the campaign, its latest output of each agent, in the client's
//! white-label branding (an agency's client), else the organization's.
//!
//! Safe to hand over: every piece of tenant content is HTML-escaped
//! (`html_escape`); the page holds no script and no style but its own
//! inline sheet, and a Content-Security-Policy that forbids scripts and
//! every request but the logo's image. Colours are used only once they
//! have the `#rrggbb` shape the branding input requires; the logo only
//! as an `https://` image source.

use std::fmt::Write as _;

use async_graphql::{Context, Result};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use strata_domain::model;

use crate::organization::Branding;
use crate::pagination::{Paging, page_request};
use crate::state::RequestState;
use strata_persistence::repo::outputs::RunFilter;

/// The latest outputs a brief reads (one per agent is shown).
const LATEST: i32 = 20;

/// The brief of `campaign`, as the caller may read it.
pub(crate) async fn render(ctx: &Context<'_>, campaign: &model::Campaign) -> Result<String> {
    let state = ctx.data::<RequestState>()?;
    let org = state.organization().await?;
    let org_branding = org.settings.get("branding").and_then(Branding::from_stored);
    let client = match campaign.client_id {
        Some(id) => state
            .client_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?,
        None => None,
    };
    let branding = match client
        .as_ref()
        .and_then(|c| Branding::from_stored(&c.branding))
    {
        Some(own) => own.or(org_branding),
        None => org_branding.unwrap_or_default(),
    };
    let page = page_request(&Paging::new(Some(LATEST), None, None, None))?;
    let runs = state
        .run_page_loader()
        .load_one(crate::loaders::RunPageKey {
            campaign: campaign.id,
            filter: RunFilter::Outputs,
            page: crate::loaders::PageShape::of(&page),
        })
        .await
        .map_err(|e| (*e).clone())?
        .map(|p| p.items)
        .unwrap_or_default();
    // Newest first: the first of each agent is its latest.
    let mut latest: Vec<&model::AgentRun> = Vec::new();
    for run in &runs {
        if !latest.iter().any(|r| r.agent == run.agent) {
            latest.push(run);
        }
    }
    Ok(page_html(
        &branding,
        &org.name,
        client.as_ref().map(|c| c.name.as_str()),
        campaign,
        &latest,
    ))
}

/// A colour from the branding, when it has the shape the input requires.
fn colour(c: Option<&String>, fallback: &'static str) -> String {
    match c {
        Some(c) if crate::organization::is_colour(c) => c.clone(),
        _ => fallback.to_owned(),
    }
}

/// The whole page.
fn page_html(
    branding: &Branding,
    org_name: &str,
    client: Option<&str>,
    campaign: &model::Campaign,
    runs: &[&model::AgentRun],
) -> String {
    let primary = colour(branding.primary_color.as_ref(), "#1f2933");
    let secondary = colour(branding.secondary_color.as_ref(), "#52606d");
    let from = branding.display_name.as_deref().unwrap_or(org_name);
    let logo = branding
        .logo_url
        .as_deref()
        .filter(|u| u.starts_with("https://") && !u.contains(char::is_whitespace));
    let img_src = logo.map_or_else(|| "'none'".to_owned(), |_| "https:".to_owned());
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src {img_src}; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:Georgia,'Times New Roman',serif;color:#1f2933;max-width:46rem;margin:2rem auto;padding:0 1.5rem;line-height:1.5}}\
         header{{border-bottom:4px solid {primary};padding-bottom:1rem;margin-bottom:1.5rem;display:flex;align-items:center;gap:1rem}}\
         header img{{max-height:3rem;max-width:10rem}}\
         h1{{color:{primary};font-size:1.8rem;margin:.2rem 0}}\
         h2{{color:{primary};font-size:1.25rem;border-bottom:1px solid {secondary};margin-top:2rem}}\
         h3{{color:{secondary};font-size:1rem;margin:1rem 0 .25rem}}\
         .meta{{color:{secondary};font-size:.9rem}}\
         footer{{margin-top:3rem;border-top:1px solid {secondary};padding-top:.75rem;color:{secondary};font-size:.85rem}}\
         @media print{{body{{margin:0}}}}\
         </style></head><body>",
        title = text(&campaign.name),
    );
    h.push_str("<header>");
    if let Some(url) = logo {
        let _ = write!(h, "<img src=\"{}\" alt=\"{}\">", attr(url), attr(from));
    }
    let _ = write!(
        h,
        "<div><div class=\"meta\">{}</div><h1>{}</h1>",
        text(from),
        text(&campaign.name)
    );
    if let Some(client) = client {
        let _ = write!(h, "<div class=\"meta\">Prepared for {}</div>", text(client));
    }
    h.push_str("</div></header>");
    if let Some(objective) = &campaign.objective {
        let _ = write!(h, "<h2>Objective</h2><p>{}</p>", text(objective));
    }
    if runs.is_empty() {
        h.push_str("<p class=\"meta\">No agent output yet.</p>");
    }
    for run in runs {
        let _ = write!(
            h,
            "<h2>{}</h2><div class=\"meta\">{}</div>",
            text(&title_case(&run.agent)),
            text(
                &run.finished_at
                    .unwrap_or(run.created_at)
                    .format("%-d %B %Y")
                    .to_string()
            )
        );
        if let Some(output) = &run.output {
            value_html(&mut h, &output.to_value(), 0);
        }
    }
    h.push_str("<footer>");
    let _ = write!(h, "{}", text(from));
    if let Some(email) = &branding.support_email {
        let _ = write!(h, " · {}", text(email));
    }
    h.push_str("</footer></body></html>\n");
    h
}

/// `BRAND_VOICE` or `toneOfVoice` as `Brand voice`, `Tone of voice`.
fn title_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut prev_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' {
            out.push(' ');
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_lowercase();
        out.extend(c.to_lowercase());
    }
    let mut chars = out.trim().chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// An output document as headings, paragraphs and lists, escaped.
fn value_html(h: &mut String, v: &serde_json::Value, depth: usize) {
    use serde_json::Value;
    match v {
        Value::Null => {}
        Value::String(s) => {
            let _ = write!(h, "<p>{}</p>", text(s));
        }
        Value::Bool(_) | Value::Number(_) => {
            let _ = write!(h, "<p>{}</p>", text(&v.to_string()));
        }
        Value::Array(items) => {
            h.push_str("<ul>");
            for item in items {
                h.push_str("<li>");
                match item {
                    Value::String(s) => h.push_str(&text(s)),
                    Value::Bool(_) | Value::Number(_) => h.push_str(&text(&item.to_string())),
                    other => value_html(h, other, depth + 1),
                }
                h.push_str("</li>");
            }
            h.push_str("</ul>");
        }
        Value::Object(fields) => {
            for (key, value) in fields {
                // The document's version and kind are for machines.
                if depth == 0 && (key == "version" || key == "kind") {
                    continue;
                }
                let _ = write!(h, "<h3>{}</h3>", text(&title_case(key)));
                value_html(h, value, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_read_as_titles() {
        assert_eq!(title_case("BRAND_VOICE"), "Brand voice");
        assert_eq!(title_case("toneOfVoice"), "Tone of voice");
        assert_eq!(title_case(""), "");
    }

    #[test]
    fn tenant_text_is_escaped_and_odd_colours_are_not_used() {
        let mut h = String::new();
        value_html(
            &mut h,
            &serde_json::json!({"<script>": ["<img src=x onerror=alert(1)>", {"a": "\"&'"}]}),
            0,
        );
        assert!(!h.contains("<script>") && !h.contains("<img"), "{h}");
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"), "{h}");
        assert_eq!(
            colour(Some(&"red;}body{x".to_owned()), "#000000"),
            "#000000"
        );
        assert_eq!(colour(Some(&"#A1b2C3".to_owned()), "#000000"), "#A1b2C3");
    }
}
