//! `deploy/` against the command line: every container that runs the
//! `strata` image in the compose file, the Kubernetes manifests and the
//! Dockerfile runs a real command with real flags, and every variable it
//! sets is one the gateway reads (with a value it accepts), so the files
//! cannot rot when an option is renamed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// What one container of the `strata` image is given.
#[derive(Debug, Default)]
struct Container {
    /// Where it is declared, for messages.
    origin: String,
    /// Its command line after the binary.
    args: Vec<String>,
    /// Its environment: name and literal value (none when it comes from a
    /// secret or a substitution).
    env: BTreeMap<String, Option<String>>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `["a", "b"]` as its items.
fn list(value: &str) -> Vec<String> {
    value
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A literal value, or none for a substitution or an empty one.
fn literal(value: &str) -> Option<String> {
    let v = value.trim().trim_matches('"').to_owned();
    (!v.is_empty() && !v.contains("${")).then_some(v)
}

/// The services of a compose file that run the `strata` image.
fn compose(path: &Path) -> Vec<Container> {
    let text = std::fs::read_to_string(path).expect("read the compose file");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if indent(l) == 2 && l.trim_end().ends_with(':') {
            let name = l.trim().trim_end_matches(':').to_owned();
            let mut j = i + 1;
            while j < lines.len() && (lines[j].trim().is_empty() || indent(lines[j]) > 2) {
                j += 1;
            }
            let body = &lines[i + 1..j];
            let strata = body.iter().any(|b| {
                b.contains("image: strata:") || b.contains("dockerfile: deploy/Dockerfile")
            });
            if strata {
                let mut c = Container {
                    origin: format!("{} service {name}", path.display()),
                    ..Container::default()
                };
                let mut k = 0;
                while k < body.len() {
                    let b = body[k].trim();
                    if let Some(cmd) = b.strip_prefix("command:") {
                        c.args = list(cmd);
                    }
                    if b == "environment:" {
                        let level = indent(body[k]);
                        k += 1;
                        while k < body.len() && indent(body[k]) > level {
                            if let Some((key, value)) = body[k].trim().split_once(':') {
                                c.env.insert(key.trim().to_owned(), literal(value));
                            }
                            k += 1;
                        }
                        continue;
                    }
                    k += 1;
                }
                out.push(c);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The containers of a Kubernetes manifest that run the `strata` image.
fn manifest(path: &Path) -> Vec<Container> {
    let text = std::fs::read_to_string(path).expect("read a manifest");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !l.trim().starts_with("image: strata:") {
            continue;
        }
        // The container's list item starts at the `- name:` above.
        let level = indent(l);
        let start = (0..i)
            .rev()
            .find(|&k| lines[k].trim().starts_with("- ") && indent(lines[k]) + 2 == level)
            .unwrap_or(i);
        let mut end = i + 1;
        while end < lines.len() && (lines[end].trim().is_empty() || indent(lines[end]) >= level) {
            end += 1;
        }
        let mut c = Container {
            origin: format!("{} container at line {}", path.display(), start + 1),
            ..Container::default()
        };
        let body = &lines[start..end];
        let mut k = 0;
        while k < body.len() {
            let b = body[k].trim();
            if let Some(args) = b
                .strip_prefix("args:")
                .or_else(|| b.strip_prefix("command:"))
            {
                c.args = list(args);
            }
            if b == "env:" {
                let env_level = indent(body[k]);
                k += 1;
                while k < body.len() && indent(body[k]) > env_level {
                    if let Some(name) = body[k].trim().strip_prefix("- name:") {
                        let value = body
                            .get(k + 1)
                            .and_then(|v| v.trim().strip_prefix("value:"))
                            .and_then(literal);
                        c.env.insert(name.trim().to_owned(), value);
                    }
                    k += 1;
                }
                continue;
            }
            k += 1;
        }
        out.push(c);
    }
    out
}

/// The Dockerfile's default command and its `ENV`.
fn dockerfile(path: &Path) -> Container {
    let text = std::fs::read_to_string(path).expect("read the Dockerfile");
    let mut c = Container {
        origin: path.display().to_string(),
        ..Container::default()
    };
    let mut in_env = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(cmd) = t.strip_prefix("CMD ") {
            c.args = list(cmd);
        }
        let rest = match t.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => t,
            None => continue,
        };
        in_env = rest.ends_with('\\');
        for pair in rest.trim_end_matches('\\').split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                c.env.insert(k.to_owned(), literal(v));
            }
        }
    }
    c
}

/// Every option of the command line with its environment variable: the
/// variable's name and the option's long flag and whether it takes a value.
fn options() -> BTreeMap<String, (String, bool)> {
    let cli = strata_server::cli::Cli::command();
    let mut out = BTreeMap::new();
    let commands = std::iter::once(&cli).chain(cli.get_subcommands());
    for cmd in commands {
        for arg in cmd.get_arguments() {
            if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
                let takes_value = arg.get_action().takes_values();
                out.insert(
                    env.to_string_lossy().into_owned(),
                    (long.to_owned(), takes_value),
                );
            }
        }
    }
    out
}

#[test]
fn every_deploy_file_runs_real_commands_with_variables_the_gateway_reads() {
    let deploy = root().join("deploy");
    let mut containers = compose(&deploy.join("compose.yaml"));
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(deploy.join("k8s"))
        .expect("deploy/k8s")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    manifests.sort();
    for m in &manifests {
        containers.extend(manifest(m));
    }
    containers.push(dockerfile(&deploy.join("Dockerfile")));
    assert!(
        containers.len() >= 5,
        "found the containers: {containers:#?}"
    );
    let options = options();
    let mut problems = Vec::new();
    for c in &containers {
        if c.args.is_empty() {
            problems.push(format!("{}: no command", c.origin));
            continue;
        }
        // The command with its literal variables as flags: clap checks
        // that the command, the flags and the values exist and parse.
        let mut argv = vec!["strata".to_owned()];
        argv.extend(c.args.iter().cloned());
        for (name, value) in &c.env {
            if name.starts_with("OTEL_") {
                continue;
            }
            let Some((long, takes_value)) = options
                .get(name)
                .or_else(|| (name == "DATABASE_URL").then(|| &options["STRATA_DATABASE_URL"]))
            else {
                problems.push(format!(
                    "{}: {name} is not a variable strata reads",
                    c.origin
                ));
                continue;
            };
            match (value, takes_value) {
                (Some(v), true) => argv.push(format!("--{long}={v}")),
                (Some(v), false) if v == "true" => argv.push(format!("--{long}")),
                (Some(v), false) => {
                    problems.push(format!("{}: {name}={v} is not true", c.origin));
                }
                (None, _) => {}
            }
        }
        if let Err(e) = <strata_server::cli::Cli as clap::Parser>::try_parse_from(&argv) {
            problems.push(format!(
                "{}: `{}` does not parse: {e}",
                c.origin,
                argv.join(" ")
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_deploy_checker_sees_what_it_checks() {
    let dir = std::env::temp_dir().join(format!("strata-deploy-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("compose.yaml");
    std::fs::write(
        &path,
        "services:\n  gateway:\n    image: strata:latest\n    command: [\"serve\", \"--no-such-flag\"]\n    environment:\n      STRATA_NO_SUCH_VAR: \"1\"\n      STRATA_LISTEN: 0.0.0.0:8080\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: x\n",
    )
    .unwrap();
    let found = compose(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].args, ["serve", "--no-such-flag"]);
    assert!(found[0].env.contains_key("STRATA_NO_SUCH_VAR"));
    assert!(!options().contains_key("STRATA_NO_SUCH_VAR"));
    assert!(
        <strata_server::cli::Cli as clap::Parser>::try_parse_from([
            "strata",
            "serve",
            "--no-such-flag"
        ])
        .is_err()
    );
    assert_eq!(
        options()["STRATA_METRICS_TOP_TENANTS"].0,
        "metrics-top-tenants"
    );
}
