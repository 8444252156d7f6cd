//! The tenant-leak fuzzer, a release gate: operations generated from the
//! gateway's own schema (so a new field is covered without code), called
//! as each principal of a seeded world with values that belong to other
//! tenants and other clients.
//!
//! Every query, mutation and subscription argument that takes an id, every
//! query's slug and every connection's cursor, and the persisted-query
//! hash, is a target. Each operation is sent twice: with another tenant's
//! (or another client's) value, and with a value of the same shape that
//! exists nowhere. Both answers must be the same once the value is masked,
//! and neither may hold an id the principal cannot see. Afterwards the
//! database must be exactly as before. A part of the operations goes
//! through PgBouncer in transaction mode.
//!
//! Seeded and reproducible: `STRATA_FUZZ_SEED` picks the seed (printed with
//! any failure), `STRATA_FUZZ_OPERATIONS` the least number of operations
//! (10,000 by default). A failure prints the principal, the operation and
//! its variables.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt, stream};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use strata_tests::pgbouncer::PgBouncer;
use strata_tests::world::World;
use strata_tests::{TestApp, texts};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::agents::ws_signed_in;

const DEFAULT_SEED: u64 = 0x5354_5241_5441_0001;
const DEFAULT_OPERATIONS: usize = 10_000;

/// SplitMix64: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }

    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(
            [self.next().to_le_bytes(), self.next().to_le_bytes()]
                .concat()
                .try_into()
                .unwrap(),
        )
        .into_uuid()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// The schema, from introspection.

const INTROSPECTION: &str = "
query {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types {
      kind name
      fields { name args { name defaultValue type { ...T } } type { ...T } }
      inputFields { name defaultValue type { ...T } }
      enumValues { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

#[derive(Clone, Debug)]
enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    fn parse(v: &Value) -> Self {
        match v["kind"].as_str() {
            Some("NON_NULL") => TypeRef::NonNull(Box::new(TypeRef::parse(&v["ofType"]))),
            Some("LIST") => TypeRef::List(Box::new(TypeRef::parse(&v["ofType"]))),
            _ => TypeRef::Named(v["name"].as_str().unwrap_or_default().to_owned()),
        }
    }

    fn named(&self) -> &str {
        match self {
            TypeRef::Named(n) => n,
            TypeRef::List(t) | TypeRef::NonNull(t) => t.named(),
        }
    }

    fn required(&self) -> bool {
        matches!(self, TypeRef::NonNull(_))
    }

    fn is_list(&self) -> bool {
        match self {
            TypeRef::List(_) => true,
            TypeRef::NonNull(t) => t.is_list(),
            TypeRef::Named(_) => false,
        }
    }

    fn sdl(&self) -> String {
        match self {
            TypeRef::Named(n) => n.clone(),
            TypeRef::List(t) => format!("[{}]", t.sdl()),
            TypeRef::NonNull(t) => format!("{}!", t.sdl()),
        }
    }
}

#[derive(Clone, Debug)]
struct InputValue {
    name: String,
    ty: TypeRef,
    has_default: bool,
}

impl InputValue {
    fn parse(v: &Value) -> Self {
        Self {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            ty: TypeRef::parse(&v["type"]),
            has_default: !v["defaultValue"].is_null(),
        }
    }

    fn must_be_given(&self) -> bool {
        self.ty.required() && !self.has_default
    }
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    args: Vec<InputValue>,
    ty: TypeRef,
}

#[derive(Debug, Default)]
struct Schema {
    kinds: HashMap<String, String>,
    fields: HashMap<String, Vec<Field>>,
    inputs: HashMap<String, Vec<InputValue>>,
    enums: HashMap<String, Vec<String>>,
    roots: Vec<(Root, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    Query,
    Mutation,
    Subscription,
}

impl Root {
    fn keyword(self) -> &'static str {
        match self {
            Root::Query => "query",
            Root::Mutation => "mutation",
            Root::Subscription => "subscription",
        }
    }
}

impl Schema {
    fn parse(data: &Value) -> Self {
        let s = &data["__schema"];
        let mut schema = Schema::default();
        for (root, key) in [
            (Root::Query, "queryType"),
            (Root::Mutation, "mutationType"),
            (Root::Subscription, "subscriptionType"),
        ] {
            if let Some(name) = s[key]["name"].as_str() {
                schema.roots.push((root, name.to_owned()));
            }
        }
        for t in s["types"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap().to_owned();
            schema
                .kinds
                .insert(name.clone(), t["kind"].as_str().unwrap().to_owned());
            if let Some(fields) = t["fields"].as_array() {
                let fields = fields
                    .iter()
                    .map(|f| Field {
                        name: f["name"].as_str().unwrap().to_owned(),
                        args: f["args"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(InputValue::parse)
                            .collect(),
                        ty: TypeRef::parse(&f["type"]),
                    })
                    .collect();
                schema.fields.insert(name.clone(), fields);
            }
            if let Some(inputs) = t["inputFields"].as_array() {
                schema
                    .inputs
                    .insert(name.clone(), inputs.iter().map(InputValue::parse).collect());
            }
            if let Some(values) = t["enumValues"].as_array() {
                schema.enums.insert(
                    name.clone(),
                    values
                        .iter()
                        .map(|v| v["name"].as_str().unwrap().to_owned())
                        .collect(),
                );
            }
        }
        schema
    }

    fn kind(&self, name: &str) -> &str {
        self.kinds.get(name).map(String::as_str).unwrap_or("SCALAR")
    }

    /// A selection of `ty`'s fields that take no required argument, `depth`
    /// levels of objects deep (empty for leaves).
    fn selection(&self, ty: &str, depth: usize) -> String {
        match self.kind(ty) {
            "OBJECT" => {
                let mut parts = vec!["__typename".to_owned()];
                for f in self.fields.get(ty).into_iter().flatten() {
                    if f.args.iter().any(InputValue::must_be_given) {
                        continue;
                    }
                    let inner = f.ty.named();
                    match self.kind(inner) {
                        "SCALAR" | "ENUM" => parts.push(f.name.clone()),
                        _ if depth > 1 => {
                            let sub = self.selection(inner, depth - 1);
                            if !sub.is_empty() {
                                parts.push(format!("{} {sub}", f.name));
                            }
                        }
                        _ => {}
                    }
                }
                format!("{{ {} }}", parts.join(" "))
            }
            "INTERFACE" | "UNION" => "{ __typename }".to_owned(),
            _ => String::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// What may be fuzzed, and with what.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ValueKind {
    Id,
    Slug,
    Cursor,
}

/// One argument (or input field) an operation can be given a value in.
#[derive(Clone, Debug)]
struct Target {
    root: Root,
    field: Field,
    /// The argument, then input fields down to the value.
    path: Vec<String>,
    ty: TypeRef,
    kind: ValueKind,
    /// Which rows a matching value comes from (tables, by label).
    stem: String,
}

impl Target {
    fn describe(&self) -> String {
        format!(
            "{} {}({})",
            self.root.keyword(),
            self.field.name,
            self.path.join(".")
        )
    }
}

/// Arguments that take a value of another tenant by design, and why.
const BY_DESIGN: &[(&str, &str, &str)] = &[(
    "addMember",
    "input.userId",
    "a user who has signed in is a global identity: an owner who holds their id adds them (members are invited by e-mail otherwise); nothing of their other organizations is read",
)];

/// Every target of the schema, but those of [`BY_DESIGN`].
fn targets(schema: &Schema) -> Vec<Target> {
    let mut out = Vec::new();
    for (root, type_name) in &schema.roots {
        for field in schema.fields.get(type_name).into_iter().flatten() {
            for arg in &field.args {
                walk(
                    schema,
                    *root,
                    field,
                    vec![arg.name.clone()],
                    &arg.ty,
                    0,
                    &mut out,
                );
            }
        }
    }
    out.retain(|t| {
        !BY_DESIGN
            .iter()
            .any(|(field, path, _)| t.field.name == *field && t.path.join(".") == *path)
    });
    out
}

fn walk(
    schema: &Schema,
    root: Root,
    field: &Field,
    path: Vec<String>,
    ty: &TypeRef,
    depth: usize,
    out: &mut Vec<Target>,
) {
    let leaf = path.last().cloned().unwrap_or_default();
    let named = ty.named();
    if schema.kind(named) == "INPUT_OBJECT" {
        if depth < 2 {
            for input in schema.inputs.get(named).into_iter().flatten() {
                let mut p = path.clone();
                p.push(input.name.clone());
                walk(schema, root, field, p, &input.ty, depth + 1, out);
            }
        }
        return;
    }
    let kind = if named == "ID" {
        Some(ValueKind::Id)
    } else if named == "String" && (leaf == "after" || leaf == "before") && !ty.is_list() {
        Some(ValueKind::Cursor)
    } else if named == "String" && leaf == "slug" && root != Root::Mutation && path.len() == 1 {
        // A slug looks a row up in queries; in a mutation's input it is a
        // new value, not a reference.
        Some(ValueKind::Slug)
    } else {
        None
    };
    if let Some(kind) = kind {
        out.push(Target {
            root,
            field: field.clone(),
            stem: stem(&field.name, &path),
            path,
            ty: ty.clone(),
            kind,
        });
    }
}

/// The kind of row a value is looked up as, from the names around it:
/// `clientId` is a client's, `id` of `updateCampaign` a campaign's.
fn stem(field: &str, path: &[String]) -> String {
    let leaf = path.last().map(String::as_str).unwrap_or_default();
    let base = leaf
        .strip_suffix("Ids")
        .or_else(|| leaf.strip_suffix("Id"))
        .filter(|s| !s.is_empty());
    match base {
        Some(b) => b.to_owned(),
        None => {
            let mut name = field;
            for verb in [
                "update", "delete", "archive", "restore", "cancel", "revoke", "remove", "save",
                "create", "run",
            ] {
                if let Some(rest) = name.strip_prefix(verb)
                    && rest.starts_with(|c: char| c.is_ascii_uppercase())
                {
                    name = rest;
                    break;
                }
            }
            let mut chars = name.chars();
            match chars.next() {
                Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        }
    }
}

/// The tables (by label) whose rows a stem names.
fn tables_of(stem: &str) -> &'static [&'static str] {
    match stem {
        "client" | "clients" => &["workspace_entities"],
        "campaign" | "campaigns" => &["campaigns"],
        "persona" | "personas" => &["personas", "entity_data:persona"],
        "agentRun" | "run" | "output" => &["agent_outputs", "outputs"],
        "apiKey" => &["api_keys"],
        "user" | "member" | "members" => &["users"],
        "organization" => &["organizations"],
        "node" | "nodes" => &[
            "organizations",
            "workspace_entities",
            "campaigns",
            "personas",
            "entity_data:persona",
            "agent_outputs",
            "outputs",
            "api_keys",
        ],
        _ => &[],
    }
}

/// A row of the world: its id, table label, organization and client.
#[derive(Clone, Debug)]
struct Row {
    id: Uuid,
    label: String,
    org: Uuid,
    client: Option<Uuid>,
    slug: Option<String>,
}

/// Every row with an id of every tenant table, from the catalog: the
/// tables of `public` and `tenant_b` with `id` and `org_id` columns (and
/// `client_id`, `slug`, `kind` where they have them), organizations and
/// members.
async fn world_rows(su: &DatabaseConnection) -> Vec<Row> {
    let tables = texts(
        su,
        "SELECT format('%s|%s|%s|%s|%s', n.nspname, c.relname,
                bool_or(a.attname = 'client_id'), bool_or(a.attname = 'slug'), bool_or(a.attname = 'kind'))
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE n.nspname IN ('public', 'tenant_b') AND c.relkind IN ('r', 'p')
          GROUP BY n.nspname, c.relname
         HAVING bool_or(a.attname = 'id') AND bool_or(a.attname = 'org_id')",
    )
    .await;
    let mut selects = vec![
        "SELECT id, 'organizations' AS label, id AS org, NULL::uuid AS client, slug FROM public.organizations".to_owned(),
        "SELECT user_id, 'users', org_id, NULL::uuid, NULL::text FROM public.memberships".to_owned(),
    ];
    for t in &tables {
        let parts: Vec<&str> = t.split('|').collect();
        let (schema, table) = (parts[0], parts[1]);
        let client = if table == "workspace_entities" {
            "id"
        } else if parts[2] == "t" {
            "client_id"
        } else {
            "NULL::uuid"
        };
        let slug = if parts[3] == "t" {
            "slug"
        } else {
            "NULL::text"
        };
        let label = if parts[4] == "t" {
            format!("'{table}:' || kind")
        } else {
            format!("'{table}'")
        };
        selects.push(format!(
            "SELECT id, {label}, org_id, {client}, {slug} FROM {schema}.{table}"
        ));
    }
    let rows = su
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            selects.join(" UNION ALL "),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| Row {
            id: r.try_get_by_index(0).unwrap(),
            label: r.try_get_by_index(1).unwrap(),
            org: r.try_get_by_index(2).unwrap(),
            client: r.try_get_by_index(3).unwrap(),
            slug: r.try_get_by_index(4).unwrap(),
        })
        .collect()
}

/// Someone the fuzzer acts as, and what it may see.
#[derive(Clone, Debug)]
struct Actor {
    name: &'static str,
    token: String,
    org: Uuid,
    /// `None`: every client of its organization.
    clients: Option<BTreeSet<Uuid>>,
}

impl Actor {
    fn sees(&self, row: &Row) -> bool {
        row.org == self.org
            && match (&self.clients, row.client) {
                (Some(mine), Some(c)) => mine.contains(&c),
                _ => true,
            }
    }
}

/// What each actor may not see, and what it may use.
struct Values {
    /// Rows the actor cannot see, by label.
    foreign: BTreeMap<String, Vec<Row>>,
    /// Rows it can, by label.
    own: BTreeMap<String, Vec<Row>>,
    /// Ids it must never be shown.
    secret: BTreeSet<String>,
}

fn values_for(actor: &Actor, rows: &[Row]) -> Values {
    let visible: BTreeSet<Uuid> = rows
        .iter()
        .filter(|r| actor.sees(r))
        .map(|r| r.id)
        .collect();
    let mut v = Values {
        foreign: BTreeMap::new(),
        own: BTreeMap::new(),
        secret: BTreeSet::new(),
    };
    for r in rows {
        if visible.contains(&r.id) {
            v.own.entry(r.label.clone()).or_default().push(r.clone());
        } else {
            v.foreign
                .entry(r.label.clone())
                .or_default()
                .push(r.clone());
            v.secret.insert(r.id.to_string());
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Building operations.

/// A GraphQL literal for a required value of `ty` (input objects with their
/// required fields), using the actor's own rows for ids.
fn literal(
    schema: &Schema,
    ty: &TypeRef,
    name: &str,
    field: &str,
    own: &Values,
    rng: &mut Rng,
) -> String {
    if ty.is_list() {
        let inner = match ty {
            TypeRef::NonNull(t) => match t.as_ref() {
                TypeRef::List(i) => i.as_ref().clone(),
                other => other.clone(),
            },
            TypeRef::List(i) => i.as_ref().clone(),
            other => other.clone(),
        };
        return format!("[{}]", literal(schema, &inner, name, field, own, rng));
    }
    let named = ty.named();
    match (schema.kind(named), named) {
        ("INPUT_OBJECT", _) => {
            let fields: Vec<String> = schema
                .inputs
                .get(named)
                .into_iter()
                .flatten()
                .filter(|f| f.must_be_given())
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.name,
                        literal(schema, &f.ty, &f.name, field, own, rng)
                    )
                })
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        ("ENUM", _) => schema
            .enums
            .get(named)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default(),
        (_, "ID") => {
            let labels = tables_of(&stem(field, &[name.to_owned()]));
            let mine: Vec<&Row> = labels
                .iter()
                .flat_map(|l| own.own.get(*l).into_iter().flatten())
                .collect();
            match rng.pick(&mine) {
                Some(r) => format!("\"{}\"", r.id),
                None => format!("\"{}\"", rng.uuid()),
            }
        }
        (_, "Int") => "1".to_owned(),
        (_, "Float") => "1.0".to_owned(),
        (_, "Boolean") => "false".to_owned(),
        (_, "DateTime") => "\"2026-01-01T00:00:00Z\"".to_owned(),
        (_, "JSON") => "{}".to_owned(),
        _ if name == "email" => "\"fuzz@strata.test\"".to_owned(),
        _ => "\"fuzz\"".to_owned(),
    }
}

/// The argument list of `target`'s field with `$v` at the target's path.
fn arguments(schema: &Schema, target: &Target, own: &Values, rng: &mut Rng) -> String {
    let mut args = Vec::new();
    for arg in &target.field.args {
        if arg.name == target.path[0] {
            args.push(format!(
                "{}: {}",
                arg.name,
                at_path(schema, target, &arg.ty, 1, own, rng)
            ));
        } else if arg.must_be_given() {
            args.push(format!(
                "{}: {}",
                arg.name,
                literal(schema, &arg.ty, &arg.name, &target.field.name, own, rng)
            ));
        }
    }
    if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    }
}

fn at_path(
    schema: &Schema,
    target: &Target,
    ty: &TypeRef,
    i: usize,
    own: &Values,
    rng: &mut Rng,
) -> String {
    if i == target.path.len() {
        return "$v".to_owned();
    }
    let named = ty.named();
    let mut fields = Vec::new();
    for f in schema.inputs.get(named).into_iter().flatten() {
        if f.name == target.path[i] {
            fields.push(format!(
                "{}: {}",
                f.name,
                at_path(schema, target, &f.ty, i + 1, own, rng)
            ));
        } else if f.must_be_given() {
            fields.push(format!(
                "{}: {}",
                f.name,
                literal(schema, &f.ty, &f.name, &target.field.name, own, rng)
            ));
        }
    }
    let object = format!("{{ {} }}", fields.join(", "));
    if ty.is_list() {
        format!("[{object}]")
    } else {
        object
    }
}

fn operation(schema: &Schema, target: &Target, own: &Values, rng: &mut Rng) -> String {
    let var_type = if target.ty.is_list() {
        target.ty.sdl()
    } else {
        // The variable is always given: `!` keeps it valid where the
        // argument is required, and is allowed where it is not.
        format!("{}!", target.ty.named())
    };
    let selection = schema.selection(target.field.ty.named(), 3);
    format!(
        "{} Fuzz($v: {var_type}) {{ {}{} {selection} }}",
        target.root.keyword(),
        target.field.name,
        arguments(schema, target, own, rng)
    )
}

/// The value for `$v`: `one` as the target's type wants it.
fn variable(target: &Target, one: &str) -> Value {
    if target.ty.is_list() {
        json!([one])
    } else {
        json!(one)
    }
}

// ---------------------------------------------------------------------------
// Cursors: the connections' opaque positions, another principal's and one
// that points at no row (the same position with an id that exists nowhere).

fn cursor_parts(cursor: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn cursor_nowhere(cursor: &str, rows: &BTreeSet<String>) -> Option<String> {
    let mut parts = cursor_parts(cursor)?;
    let id: Uuid = parts["id"].as_str()?.parse().ok()?;
    let mut bytes = *id.as_bytes();
    bytes[15] ^= 1;
    let moved = Uuid::from_bytes(bytes);
    if rows.contains(&moved.to_string()) {
        return None;
    }
    parts["id"] = json!(moved.to_string());
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.to_string()))
}

/// The opaque node id of an object without a UUID of its own.
fn opaque(kind: &str, ids: &[Uuid]) -> String {
    let mut text = kind.to_owned();
    for id in ids {
        text.push(':');
        text.push_str(&id.to_string());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// Every `cursor` and `endCursor`/`startCursor` in a response.
fn cursors_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let (true, Some(s)) = (
                    k == "cursor" || k == "endCursor" || k == "startCursor",
                    x.as_str(),
                ) {
                    out.push(s.to_owned());
                }
                cursors_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| cursors_in(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Checking answers.

/// An answer with `value` masked, ready to compare.
fn masked(answer: &Value, value: &str) -> String {
    answer.to_string().replace(value, "<value>")
}

/// The ids in `text` that `secret` holds, also inside opaque (base64url)
/// ids and cursors.
fn leaked(text: &str, secret: &BTreeSet<String>) -> Vec<String> {
    let plain = |t: &str| -> Vec<String> {
        t.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .filter(|w| w.len() == 36)
            .filter(|w| secret.contains(&w.to_ascii_lowercase()))
            .map(str::to_owned)
            .collect()
    };
    let mut found = plain(text);
    for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
        if token.len() < 24 {
            continue;
        }
        if let Some(inner) = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            found.extend(plain(&inner));
        }
    }
    found
}

/// A checksum of every table of ours, to see that nothing changed.
async fn digest(su: &DatabaseConnection) -> BTreeMap<String, String> {
    let tables = texts(
        su,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('public', 'tenant_b', 'app') AND c.relkind IN ('r', 'p')
          ORDER BY 1",
    )
    .await;
    let mut out = BTreeMap::new();
    for t in tables {
        let sum = strata_tests::text(
            su,
            &format!(
                "SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {t} x"
            ),
        )
        .await
        .unwrap_or_default();
        out.insert(t, sum);
    }
    out
}

/// One generated operation, as sent with both values.
struct Case {
    actor: usize,
    through_pooler: bool,
    target: String,
    root: Root,
    query: String,
    foreign: String,
    nowhere: String,
    shape: Shape,
    /// What the value is: an id, a slug, a cursor or a persisted-query hash.
    kind: &'static str,
}

/// Where a case's value goes.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `$v`.
    One,
    /// `$v`, a list of one.
    List,
    /// The request's persisted-query hash.
    PersistedHash,
}

struct Outcome {
    sent: usize,
    failures: Vec<String>,
}

async fn post(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, answer) = app.graphql_body(Some(token), body).await;
    json!({ "status": status, "body": answer })
}

async fn run_case(app: &TestApp, actor: &Actor, values: &Values, case: &Case) -> Outcome {
    let mut failures = Vec::new();
    let send = |v: &str| match case.shape {
        Shape::List => json!({ "query": case.query, "variables": { "v": [v] } }),
        Shape::One => json!({ "query": case.query, "variables": { "v": v } }),
        Shape::PersistedHash => {
            json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": v } } })
        }
    };
    let (foreign, nowhere) = if case.root == Root::Subscription {
        (
            subscribe(app, &actor.token, &send(&case.foreign)).await,
            subscribe(app, &actor.token, &send(&case.nowhere)).await,
        )
    } else {
        (
            post(app, &actor.token, &send(&case.foreign)).await,
            post(app, &actor.token, &send(&case.nowhere)).await,
        )
    };
    let (a, b) = (
        masked(&foreign, &case.foreign),
        masked(&nowhere, &case.nowhere),
    );
    let report = |what: String| {
        format!(
            "as {}{} on {}: {what}\n  operation: {}\n  foreign value: {}\n  nowhere value: {}",
            actor.name,
            if case.through_pooler {
                " through PgBouncer"
            } else {
                ""
            },
            case.target,
            case.query,
            case.foreign,
            case.nowhere
        )
    };
    if a != b {
        failures.push(report(format!(
            "another tenant's value answered otherwise than a value that exists nowhere\n  foreign answer: {a}\n  nowhere answer: {b}"
        )));
    }
    for (which, text) in [("foreign", &a), ("nowhere", &b)] {
        let ids = leaked(text, &values.secret);
        if !ids.is_empty() {
            failures.push(report(format!(
                "the {which} answer holds ids it must not: {ids:?}\n  answer: {text}"
            )));
        }
    }
    Outcome { sent: 2, failures }
}

/// A subscription's first message (or the close) over a fresh socket.
async fn subscribe(app: &TestApp, token: &str, payload: &Value) -> Value {
    let mut socket = ws_signed_in(app, token).await;
    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": payload }).to_string(),
        ))
        .await
        .unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), socket.next())
        .await
        .expect("the subscription answers in time");
    let answer = match first {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap_or(Value::Null),
        Some(Ok(Message::Close(frame))) => json!({ "closed": frame.map(|f| u16::from(f.code)) }),
        other => json!({ "other": format!("{other:?}") }),
    };
    let _ = socket.close(None).await;
    answer
}

#[tokio::test]
async fn no_generated_operation_leaks_another_tenants_or_clients_rows() {
    let seed: u64 = env_or("STRATA_FUZZ_SEED", DEFAULT_SEED);
    let least: usize = env_or("STRATA_FUZZ_OPERATIONS", DEFAULT_OPERATIONS);
    let mut rng = Rng(seed);

    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    // The same database through PgBouncer in transaction mode, as the
    // gateway logs in in production.
    let pooled = if strata_tests::tier::available(
        strata_tests::tier::Part::PgBouncer,
        "no_generated_operation_leaks_another_tenants_or_clients_rows (its pooled part)",
    ) {
        let url = app.test_db.url_logging_in_as("strata_gateway").await;
        let bouncer = PgBouncer::start(&url, 2).await;
        let second = TestApp::builder()
            .transaction_pooling(true)
            .spawn_beside_on(&app, bouncer.url.clone())
            .await;
        Some((second, bouncer))
    } else {
        None
    };

    // The actors: every principal of the world, with the clients an
    // account manager is limited to read from the database.
    let mut actors = Vec::new();
    for p in w.principals() {
        let assigned = texts(
            &su,
            &format!(
                "SELECT a.client_id::text FROM tenant_b.client_assignments a
                   JOIN public.memberships m USING (org_id, user_id)
                  WHERE m.org_id = '{}' AND m.user_id = '{}' AND m.role = 'ACCOUNT_MANAGER'",
                p.org, p.user
            ),
        )
        .await;
        let role = strata_tests::text(
            &su,
            &format!(
                "SELECT role FROM public.memberships WHERE org_id = '{}' AND user_id = '{}'",
                p.org, p.user
            ),
        )
        .await;
        let clients = (role.as_deref() == Some("ACCOUNT_MANAGER"))
            .then(|| assigned.iter().map(|c| c.parse().unwrap()).collect());
        actors.push(Actor {
            name: p.name,
            token: app.token(p.user, Some(p.org)),
            org: p.org.as_uuid(),
            clients,
        });
    }
    assert!(
        actors.iter().any(|a| a.clients.is_some()),
        "the world has an actor limited to some clients"
    );
    let rows = world_rows(&su).await;
    let every_id: BTreeSet<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let values: Vec<Values> = actors.iter().map(|a| values_for(a, &rows)).collect();

    // The schema, as any client reads it.
    let (status, intro) = app
        .graphql(Some(&actors[0].token), INTROSPECTION, json!({}))
        .await;
    assert_eq!(status, 200, "{intro}");
    let schema = Schema::parse(&intro["data"]);
    let targets = targets(&schema);
    let described: BTreeSet<String> = targets.iter().map(Target::describe).collect();
    for must in [
        "query campaign(id)",
        "query client(slug)",
        "query campaigns(after)",
        "mutation updateCampaign(input.id)",
        "subscription agentRun(id)",
    ] {
        assert!(
            described.contains(must),
            "{must} is among the targets: {described:#?}"
        );
    }

    // Each actor's cursors, from every connection it can read with its
    // own values, and a persisted query each registers. The controls also
    // show that the generated operations work: a generator whose
    // operations fail for everyone would prove nothing.
    let mut cursors: Vec<Vec<String>> = vec![Vec::new(); actors.len()];
    let mut answered = BTreeSet::new();
    let mut sent = 0usize;
    for (i, actor) in actors.iter().enumerate() {
        for t in targets.iter().filter(|t| t.root == Root::Query) {
            let query = operation(&schema, t, &values[i], &mut rng);
            let own = match t.kind {
                ValueKind::Id => tables_of(&t.stem)
                    .iter()
                    .flat_map(|l| values[i].own.get(*l).into_iter().flatten())
                    .next()
                    .map(|r| r.id.to_string()),
                ValueKind::Slug => tables_of(&t.stem)
                    .iter()
                    .flat_map(|l| values[i].own.get(*l).into_iter().flatten())
                    .find_map(|r| r.slug.clone()),
                ValueKind::Cursor => None,
            };
            let query = if t.kind == ValueKind::Cursor {
                // Without the cursor: the first page.
                query
                    .replace(&format!("{}: $v", t.path[0]), "first: 100")
                    .replace("($v: String!)", "")
            } else {
                query
            };
            let vars = own
                .map(|o| json!({ "v": variable(t, &o) }))
                .unwrap_or(json!({}));
            if t.kind != ValueKind::Cursor && vars == json!({}) {
                continue;
            }
            let (_, body) = app.graphql(Some(&actor.token), &query, vars).await;
            sent += 1;
            if body.get("errors").is_none() && !body["data"][&t.field.name].is_null() {
                answered.insert(t.describe());
            }
            cursors_in(&body["data"], &mut cursors[i]);
            let leaks = leaked(&body.to_string(), &values[i].secret);
            assert!(
                leaks.is_empty(),
                "as {}, {query} showed {leaks:?}: {body}",
                actor.name
            );
        }
    }
    for must in [
        "query campaign(id)",
        "query client(slug)",
        "query persona(id)",
        "query campaigns(clientId)",
        "query node(id)",
        "query nodes(ids)",
    ] {
        assert!(
            answered.contains(must),
            "{must} answered with an actor's own value: {answered:#?}"
        );
    }
    let mut hashes: Vec<(Uuid, String)> = Vec::new();
    for (i, actor) in actors.iter().enumerate() {
        let text = format!("query Registered{i} {{ organization {{ id name }} }}");
        let hash = strata_server::documents::sha256_hex(&text);
        let (_, body) = app
            .graphql_body(
                Some(&actor.token),
                &json!({ "query": text, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
            )
            .await;
        assert!(body.get("errors").is_none(), "{body}");
        sent += 1;
        hashes.push((actor.org, hash));
    }
    let before = digest(&su).await;

    // The cases: every target for every actor, with values of other tenants
    // and clients, enough of them for the least number of operations.
    let per = least
        .div_ceil(2 * actors.len() * (targets.len() + 1))
        .max(1);
    let mut cases = Vec::new();
    for (i, actor) in actors.iter().enumerate() {
        let v = &values[i];
        let all_foreign: Vec<&Row> = v.foreign.values().flatten().collect();
        let others_cursors: Vec<&String> = cursors
            .iter()
            .enumerate()
            .filter(|(j, _)| actors[*j].org != actor.org || actors[*j].clients != actor.clients)
            .flat_map(|(_, c)| c)
            .filter(|c| !cursors[i].contains(c))
            .collect();
        for t in &targets {
            let matching: Vec<&Row> = tables_of(&t.stem)
                .iter()
                .flat_map(|l| v.foreign.get(*l).into_iter().flatten())
                .collect();
            for _ in 0..per {
                let (foreign, nowhere) = match t.kind {
                    ValueKind::Id => {
                        // Mostly a row of the kind the name asks for, now
                        // and then any row.
                        let pool = if matching.is_empty() || rng.below(4) == 0 {
                            &all_foreign
                        } else {
                            &matching
                        };
                        let Some(row) = rng.pick(pool) else { continue };
                        // Now and then the opaque id of a membership or an
                        // output, against one of the same kind that exists
                        // nowhere.
                        match (rng.below(3), row.label.as_str()) {
                            (0, "users") => (
                                opaque("Membership", &[row.org, row.id]),
                                opaque("Membership", &[row.org, rng.uuid()]),
                            ),
                            (0, "agent_outputs" | "outputs") => (
                                opaque("AgentOutput", &[row.id]),
                                opaque("AgentOutput", &[rng.uuid()]),
                            ),
                            _ => (row.id.to_string(), rng.uuid().to_string()),
                        }
                    }
                    ValueKind::Slug => {
                        let slugs: Vec<&String> =
                            matching.iter().filter_map(|r| r.slug.as_ref()).collect();
                        let Some(slug) = rng.pick(&slugs) else {
                            continue;
                        };
                        ((*slug).clone(), format!("nowhere-{:x}", rng.next()))
                    }
                    ValueKind::Cursor => {
                        let Some(c) = rng.pick(&others_cursors) else {
                            continue;
                        };
                        let Some(n) = cursor_nowhere(c, &every_id) else {
                            continue;
                        };
                        ((*c).clone(), n)
                    }
                };
                cases.push(Case {
                    actor: i,
                    through_pooler: false,
                    target: t.describe(),
                    root: t.root,
                    query: operation(&schema, t, v, &mut rng),
                    foreign,
                    nowhere,
                    shape: if t.ty.is_list() {
                        Shape::List
                    } else {
                        Shape::One
                    },
                    kind: match t.kind {
                        ValueKind::Id => "id",
                        ValueKind::Slug => "slug",
                        ValueKind::Cursor => "cursor",
                    },
                });
            }
        }
        // Another organization's persisted query.
        let theirs: Vec<&String> = hashes
            .iter()
            .filter(|(org, _)| *org != actor.org)
            .map(|(_, h)| h)
            .collect();
        for _ in 0..per {
            let Some(h) = rng.pick(&theirs) else { break };
            let nowhere = strata_server::documents::sha256_hex(&rng.uuid().to_string());
            cases.push(Case {
                actor: i,
                through_pooler: false,
                target: "a persisted query's hash".to_owned(),
                root: Root::Query,
                query: String::new(),
                foreign: (*h).clone(),
                nowhere,
                shape: Shape::PersistedHash,
                kind: "persisted-query hash",
            });
        }
    }
    // Every fourth case through the pooler, when there is one.
    if pooled.is_some() {
        for (k, c) in cases.iter_mut().enumerate() {
            c.through_pooler = k % 4 == 3;
        }
    }

    let pooled_app = pooled.as_ref().map(|(a, _)| a);
    let results: Vec<Outcome> = stream::iter(cases.iter())
        .map(|case| {
            let target = match (case.through_pooler, pooled_app) {
                (true, Some(p)) => p,
                _ => &app,
            };
            run_case(target, &actors[case.actor], &values[case.actor], case)
        })
        .buffered(4)
        .collect()
        .await;
    let failures: Vec<&String> = results.iter().flat_map(|o| &o.failures).collect();
    sent += results.iter().map(|o| o.sent).sum::<usize>();
    let by_target = cases
        .iter()
        .fold(BTreeMap::<&str, usize>::new(), |mut m, c| {
            *m.entry(c.target.as_str()).or_default() += 1;
            m
        });
    let by_kind = cases
        .iter()
        .fold(BTreeMap::<&str, usize>::new(), |mut m, c| {
            *m.entry(c.kind).or_default() += 1;
            m
        });
    eprintln!(
        "fuzz: seed {seed:#x}, {sent} operations, {} cases ({by_kind:?}) over {} targets, {} through PgBouncer",
        cases.len(),
        by_target.len(),
        cases.iter().filter(|c| c.through_pooler).count()
    );
    for kind in ["id", "slug", "cursor", "persisted-query hash"] {
        assert!(
            by_kind.get(kind).is_some_and(|n| *n > 0),
            "no case of a {kind}: {by_kind:?}"
        );
    }
    let mut failing: BTreeMap<&str, usize> = BTreeMap::new();
    for (case, outcome) in cases.iter().zip(&results) {
        if !outcome.failures.is_empty() {
            *failing.entry(case.target.as_str()).or_default() += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} leaks in {failing:?} (seed {seed:#x}, STRATA_FUZZ_SEED reruns it); the first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(
        sent >= least,
        "only {sent} operations were generated, fewer than {least}"
    );

    // Nothing any of them did stayed in the database.
    let after = digest(&su).await;
    let changed: Vec<&String> = before
        .iter()
        .filter(|(t, sum)| after.get(*t) != Some(sum))
        .map(|(t, _)| t)
        .collect();
    assert!(
        changed.is_empty(),
        "the fuzzed operations changed {changed:?} (seed {seed:#x})"
    );
    drop(pooled);
}
