//! `strata audit`: runs the persistence layer's lint (and, when asked, its
//! leak probe) against the configured database, prints the report as text
//! or JSON, and turns it into the exit status: 0 clean, 1 findings, 2 the
//! audit could not run.

use std::fmt::Write as _;

use strata_persistence::audit::{Finding, Report};

/// Exit status of a clean audit.
pub const CLEAN: u8 = 0;
/// Exit status of an audit with findings.
pub const FINDINGS: u8 = 1;
/// Exit status of an audit that could not run.
pub const COULD_NOT_RUN: u8 = 2;

/// The exit status `report` calls for.
pub fn exit_status(report: &Report) -> u8 {
    if report.is_clean() { CLEAN } else { FINDINGS }
}

/// The report as text: one block per finding, then the notes, then a
/// summary line.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{:<8} {}  {}\n         {}\n         fix: {}",
            f.severity.as_str().to_uppercase(),
            f.id,
            f.object,
            f.message,
            f.fix
        );
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if report.is_clean() {
        let _ = writeln!(out, "strata audit: no findings");
    } else {
        let _ = writeln!(
            out,
            "strata audit: {} finding{}",
            report.findings.len(),
            if report.findings.len() == 1 { "" } else { "s" }
        );
    }
    out
}

fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "severity": f.severity.as_str(),
        "object": f.object,
        "message": f.message,
        "fix": f.fix,
    })
}

/// The report as one JSON document: `{"clean", "findings": [{id, severity,
/// object, message, fix}], "notes": [...]}`.
pub fn json(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "clean": report.is_clean(),
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "notes": report.notes,
    })
}

/// The JSON document of an audit that could not run.
pub fn json_error(error: &str) -> serde_json::Value {
    serde_json::json!({ "clean": false, "error": error, "findings": [], "notes": [] })
}

/// Logs every finding of the lint run at start, as a warning each.
pub fn log(report: &Report) {
    for f in &report.findings {
        tracing::warn!(
            audit.id = f.id,
            audit.severity = f.severity.as_str(),
            audit.object = %f.object,
            audit.message = %f.message,
            audit.fix = %f.fix,
            "the database's isolation layer has a finding (see `strata audit`)"
        );
    }
    for n in &report.notes {
        tracing::debug!(audit.note = %n, "audit note");
    }
}

#[cfg(test)]
mod tests {
    use strata_persistence::audit::{Finding, Report, Severity};

    use super::*;

    fn finding() -> Finding {
        Finding {
            id: "rls.not_forced",
            severity: Severity::Critical,
            object: "public.campaigns".into(),
            message: "row-level security is not forced".into(),
            fix: "ALTER TABLE public.campaigns FORCE ROW LEVEL SECURITY;".into(),
        }
    }

    #[test]
    fn a_clean_report_exits_0_and_any_finding_1() {
        let mut report = Report::default();
        report.notes.push("a note is not a finding".into());
        assert_eq!(exit_status(&report), 0);
        assert!(text(&report).contains("no findings"));
        report.findings.push(finding());
        assert_eq!(exit_status(&report), 1);
        assert_eq!(COULD_NOT_RUN, 2);
    }

    #[test]
    fn text_and_json_carry_id_severity_object_and_fix() {
        let report = Report {
            findings: vec![finding()],
            notes: vec![],
        };
        let t = text(&report);
        for part in [
            "CRITICAL",
            "rls.not_forced",
            "public.campaigns",
            "fix: ALTER TABLE",
            "1 finding",
        ] {
            assert!(t.contains(part), "{part} in {t}");
        }
        let j = json(&report);
        assert_eq!(j["clean"], false);
        assert_eq!(j["findings"][0]["id"], "rls.not_forced");
        assert_eq!(j["findings"][0]["severity"], "critical");
        assert_eq!(j["findings"][0]["object"], "public.campaigns");
        assert!(j["findings"][0]["fix"].as_str().is_some());
    }
}
