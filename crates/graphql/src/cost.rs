//! What an operation costs before it runs: an estimate of the rows it
//! reads, read from the schema's own SDL and its `@cost` / `@listSize`
//! directives (the IBM GraphQL cost directive draft), so that the SDL a
//! client sees is the cost model the gateway charges by.
//!
//! The rules: an object type costs its `@cost(weight)` (1 unless it says
//! otherwise; connection, edge and page-info types say 0: they read no row
//! of their own), scalars and enums cost nothing, and a field with
//! `@listSize(slicingArguments, sizedFields, assumedSize)` multiplies what
//! its sized fields (`edges`, `nodes`) cost by the value of the slicing
//! argument the operation passes (`first` or `last`), or by `assumedSize`
//! when it passes none. A plain list without `@listSize` counts as
//! [`ASSUMED_LIST`] items. Introspection costs nothing.
//!
//! The estimate is computed from the parsed document and the variables,
//! with no I/O, once per operation.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ConstDirective, DocumentOperations, ExecutableDocument, Field, Selection,
    SelectionSet, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Positioned, Value, Variables};

/// Items a list field without `@listSize` is assumed to hold.
pub const ASSUMED_LIST: u64 = 10;

/// Items a connection returns when the operation asks for no number.
const DEFAULT_PAGE: u64 = 20;

/// The most an estimate counts (beyond it, every operation is equally too
/// expensive).
const CEILING: u64 = 1 << 40;

/// How a field is sized when it returns many items.
#[derive(Clone, Debug, Default)]
struct ListSize {
    slicing: Vec<String>,
    sized_fields: Vec<String>,
    assumed: Option<u64>,
}

#[derive(Clone, Debug)]
struct FieldFacts {
    /// The named type the field returns.
    ty: String,
    /// Whether it returns a list (of any depth).
    list: bool,
    list_size: Option<ListSize>,
    /// `@cost(weight)` on the field itself, overriding its type's.
    weight: Option<u64>,
}

/// The cost model of a schema.
#[derive(Clone, Debug, Default)]
pub struct CostModel {
    /// Field facts per (type, field).
    fields: HashMap<String, HashMap<String, FieldFacts>>,
    /// What one item of each object type costs.
    type_weight: HashMap<String, u64>,
    query: String,
    mutation: String,
    subscription: String,
}

fn directive<'a>(dirs: &'a [Positioned<ConstDirective>], name: &str) -> Option<&'a ConstDirective> {
    dirs.iter().map(|d| &d.node).find(|d| d.name.node == name)
}

fn weight_of(d: &ConstDirective) -> Option<u64> {
    let v = &d.get_argument("weight")?.node;
    match v {
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .map(|w| w.max(0.0).round() as u64),
        Value::Number(n) => n.as_f64().map(|w| w.max(0.0).round() as u64),
        _ => None,
    }
}

fn strings(v: Option<&Positioned<Value>>) -> Vec<String> {
    match v.map(|v| &v.node) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl CostModel {
    /// The model of the schema whose SDL is `sdl`.
    pub fn from_sdl(sdl: &str) -> Result<Self, String> {
        let doc = async_graphql::parser::parse_schema(sdl).map_err(|e| e.to_string())?;
        let mut model = CostModel {
            query: "Query".into(),
            mutation: "Mutation".into(),
            subscription: "Subscription".into(),
            ..CostModel::default()
        };
        for def in doc.definitions {
            match def {
                TypeSystemDefinition::Schema(s) => {
                    let s = s.node;
                    if let Some(q) = s.query {
                        model.query = q.node.to_string();
                    }
                    if let Some(m) = s.mutation {
                        model.mutation = m.node.to_string();
                    }
                    if let Some(sub) = s.subscription {
                        model.subscription = sub.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(t) => {
                    let t = t.node;
                    let name = t.name.node.to_string();
                    let fields = match &t.kind {
                        TypeKind::Object(o) => &o.fields,
                        TypeKind::Interface(i) => &i.fields,
                        _ => continue,
                    };
                    // Connections, their edges and page info read no row
                    // of their own, whether or not the SDL says so.
                    let wrapper = name.ends_with("Connection")
                        || name.ends_with("Edge")
                        || name == "PageInfo";
                    let weight = directive(&t.directives, "cost")
                        .and_then(weight_of)
                        .unwrap_or(if wrapper { 0 } else { 1 });
                    model.type_weight.insert(name.clone(), weight);
                    let facts = fields
                        .iter()
                        .map(|f| {
                            let f = &f.node;
                            let mut ty = &f.ty.node;
                            let mut list = false;
                            while let BaseType::List(inner) = &ty.base {
                                list = true;
                                ty = inner;
                            }
                            let named = match &ty.base {
                                BaseType::Named(n) => n.to_string(),
                                BaseType::List(_) => String::new(),
                            };
                            let relay = named.ends_with("Connection")
                                && f.arguments.iter().any(|a| a.node.name.node == "first");
                            let list_size =
                                directive(&f.directives, "listSize").map(|d| ListSize {
                                    slicing: strings(d.get_argument("slicingArguments")),
                                    sized_fields: strings(d.get_argument("sizedFields")),
                                    assumed: d.get_argument("assumedSize").and_then(|v| {
                                        match &v.node {
                                            Value::Number(n) => n.as_u64(),
                                            _ => None,
                                        }
                                    }),
                                });
                            // A Relay connection without `@listSize` is sized
                            // by `first`/`last`, the default page when neither.
                            let list_size = list_size.or_else(|| {
                                relay.then(|| ListSize {
                                    slicing: vec!["first".into(), "last".into()],
                                    sized_fields: vec!["edges".into(), "nodes".into()],
                                    assumed: Some(DEFAULT_PAGE),
                                })
                            });
                            let facts = FieldFacts {
                                ty: named,
                                list,
                                list_size,
                                weight: directive(&f.directives, "cost").and_then(weight_of),
                            };
                            (f.name.node.to_string(), facts)
                        })
                        .collect();
                    model.fields.insert(name, facts);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        Ok(model)
    }

    /// The estimated rows the operation `name` of `doc` reads with
    /// `variables`; at least 1 for anything that runs.
    pub fn estimate(
        &self,
        doc: &ExecutableDocument,
        name: Option<&str>,
        variables: &Variables,
    ) -> u64 {
        let op = match (&doc.operations, name) {
            (DocumentOperations::Single(op), _) => Some(op),
            (DocumentOperations::Multiple(ops), Some(name)) => ops
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, op)| op),
            (DocumentOperations::Multiple(ops), None) => ops.values().next(),
        };
        let Some(op) = op else { return 1 };
        let root = match op.node.ty {
            async_graphql::parser::types::OperationType::Query => &self.query,
            async_graphql::parser::types::OperationType::Mutation => &self.mutation,
            async_graphql::parser::types::OperationType::Subscription => &self.subscription,
        };
        let mut walk = Walk {
            model: self,
            doc,
            variables,
            depth: 0,
        };
        walk.set(&op.node.selection_set, root).clamp(1, CEILING)
    }
}

struct Walk<'a> {
    model: &'a CostModel,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    /// Fragment spreads followed, so a cycle cannot loop.
    depth: usize,
}

impl Walk<'_> {
    fn set(&mut self, set: &Positioned<SelectionSet>, ty: &str) -> u64 {
        let mut total: u64 = 0;
        for sel in &set.node.items {
            total = total
                .saturating_add(self.selection(sel, ty, None))
                .min(CEILING);
        }
        total
    }

    /// What one selection of `ty` costs. Inside a connection, `sized` is
    /// its sized fields and how many items each holds.
    fn selection(
        &mut self,
        sel: &Positioned<Selection>,
        ty: &str,
        sized: Option<(&[String], u64)>,
    ) -> u64 {
        match &sel.node {
            Selection::Field(f) => {
                let f = &f.node;
                match sized {
                    Some((names, items)) if names.iter().any(|n| n == f.name.node.as_str()) => {
                        self.field(f, ty, true).saturating_mul(items)
                    }
                    _ => self.field(f, ty, false),
                }
            }
            Selection::InlineFragment(i) => {
                let on = i
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(ty.to_owned(), |c| c.node.on.node.to_string());
                let mut total = 0u64;
                for sel in &i.node.selection_set.node.items {
                    total = total.saturating_add(self.selection(sel, &on, sized));
                }
                total
            }
            Selection::FragmentSpread(s) => {
                // A fragment that spreads itself is refused before this runs;
                // the depth bound only keeps a slip from looping.
                if self.depth > 64 {
                    return 0;
                }
                let Some(frag) = self.doc.fragments.get(&s.node.fragment_name.node) else {
                    return 0;
                };
                self.depth += 1;
                let on = frag.node.type_condition.node.on.node.to_string();
                let mut total = 0u64;
                for sel in &frag.node.selection_set.node.items {
                    total = total.saturating_add(self.selection(sel, &on, sized));
                }
                self.depth -= 1;
                total
            }
        }
    }

    /// What `field` of `ty` costs. A sized field (a connection's `edges` or
    /// `nodes`) is counted once here and multiplied by its connection.
    fn field(&mut self, field: &Field, ty: &str, sized_field: bool) -> u64 {
        let name = field.name.node.as_str();
        if name.starts_with("__") {
            return 0;
        }
        let Some(facts) = self.model.fields.get(ty).and_then(|f| f.get(name)) else {
            return 0;
        };
        let own = facts
            .weight
            .or_else(|| self.model.type_weight.get(&facts.ty).copied())
            .unwrap_or(0);
        let sized_fields = facts
            .list_size
            .as_ref()
            .map(|ls| ls.sized_fields.clone())
            .unwrap_or_default();
        if let Some(ls) = facts
            .list_size
            .as_ref()
            .filter(|_| !sized_fields.is_empty())
        {
            // A connection: what is inside its sized fields is read once per
            // item, the rest (totalCount, pageInfo) once.
            let items = self.slice(field, ls);
            let mut total = own;
            for sel in &field.selection_set.node.items {
                total = total.saturating_add(self.selection(
                    sel,
                    &facts.ty,
                    Some((&sized_fields, items)),
                ));
            }
            return total.min(CEILING);
        }
        let per_item = own.saturating_add(self.set(&field.selection_set, &facts.ty));
        let items = match &facts.list_size {
            Some(ls) => self.slice(field, ls),
            None if facts.list && !sized_field => ASSUMED_LIST,
            None => 1,
        };
        per_item.saturating_mul(items).min(CEILING)
    }

    /// The items a sized field returns: the first slicing argument passed,
    /// else the assumed size, else [`ASSUMED_LIST`].
    fn slice(&self, field: &Field, ls: &ListSize) -> u64 {
        for arg in &ls.slicing {
            let Some(value) = field.get_argument(arg) else {
                continue;
            };
            let value = value
                .node
                .clone()
                .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
                .ok();
            if let Some(Value::Number(n)) = value
                && let Some(n) = n.as_u64()
            {
                return n;
            }
        }
        ls.assumed.unwrap_or(ASSUMED_LIST)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SDL: &str = r#"
        type Query { campaigns(first: Int, after: String): CampaignConnection! organization: Org! tags: [Tag!]! }
        type Org { id: ID! name: String! }
        type Tag { id: ID! }
        type CampaignConnection { edges: [CampaignEdge!]! nodes: [Campaign!]! pageInfo: PageInfo! totalCount: Int! }
        type CampaignEdge { cursor: String! node: Campaign! }
        type PageInfo { hasNextPage: Boolean! }
        type Campaign { id: ID! name: String! outputs(first: Int): OutputConnection! }
        type OutputConnection { nodes: [Output!]! }
        type Output { id: ID! }
    "#;

    fn estimate(q: &str, vars: serde_json::Value) -> u64 {
        let model = CostModel::from_sdl(SDL).unwrap();
        let doc = async_graphql::parser::parse_query(q).unwrap();
        model.estimate(&doc, None, &Variables::from_json(vars))
    }

    #[test]
    fn connections_cost_the_rows_their_pages_hold() {
        assert_eq!(
            estimate("{ organization { id name } }", serde_json::json!({})),
            1
        );
        assert_eq!(
            estimate(
                "{ campaigns(first: 5) { edges { node { id } } } }",
                serde_json::json!({})
            ),
            5
        );
        assert_eq!(
            estimate(
                "{ campaigns { nodes { id } totalCount pageInfo { hasNextPage } } }",
                serde_json::json!({})
            ),
            20
        );
        assert_eq!(
            estimate(
                "query($n: Int) { campaigns(first: $n) { nodes { id outputs(first: 4) { nodes { id } } } } }",
                serde_json::json!({ "n": 10 })
            ),
            10 + 10 * 4
        );
        assert_eq!(
            estimate(
                "{ campaigns(first: 3) { ...F } } fragment F on CampaignConnection { edges { node { id } } }",
                serde_json::json!({})
            ),
            3
        );
        assert_eq!(
            estimate("{ tags { id } }", serde_json::json!({})),
            ASSUMED_LIST
        );
        assert_eq!(
            estimate("{ __schema { types { name } } }", serde_json::json!({})),
            1
        );
    }
}
