//! Limits on an operation's shape, checked once the document is parsed and
//! before it is validated or run: how many aliases it uses and how many
//! fields the executed operation asks for at its root. Depth and complexity
//! are async-graphql's own limits (see [`crate::Limits`]).

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};

use crate::error::ErrorCode;

/// The shape limits of [`crate::Limits`], as an extension of the schema.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShapeLimits {
    pub max_aliases: usize,
    pub max_root_fields: usize,
}

impl ExtensionFactory for ShapeLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for ShapeLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&doc);
        if aliases > self.max_aliases {
            return Err(too_complex(format!(
                "the operation uses {aliases} aliases; at most {} are allowed",
                self.max_aliases
            )));
        }
        let root = doc
            .operations
            .iter()
            .map(|(_, op)| root_fields(&doc, &op.node.selection_set))
            .max()
            .unwrap_or(0);
        if root > self.max_root_fields {
            return Err(too_complex(format!(
                "the operation selects {root} root fields; at most {} are allowed",
                self.max_root_fields
            )));
        }
        Ok(doc)
    }
}

fn too_complex(message: String) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", ErrorCode::QueryTooComplex.as_str());
    err.extensions = Some(ext);
    err
}

/// Aliases written in the document: in every operation and every fragment
/// definition, each counted once.
fn count_aliases(doc: &ExecutableDocument) -> usize {
    fn walk(set: &Positioned<SelectionSet>) -> usize {
        set.node
            .items
            .iter()
            .map(|sel| match &sel.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set)
                }
                Selection::InlineFragment(i) => walk(&i.node.selection_set),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    doc.operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set))
        .chain(
            doc.fragments
                .values()
                .map(|frag| walk(&frag.node.selection_set)),
        )
        .sum()
}

/// Fields an operation selects at its root, fragments expanded (each named
/// fragment at most once, so a cycle cannot loop; validation rejects cycles
/// later anyway).
fn root_fields(doc: &ExecutableDocument, set: &Positioned<SelectionSet>) -> usize {
    fn walk<'a>(
        doc: &'a ExecutableDocument,
        set: &'a Positioned<SelectionSet>,
        seen: &mut HashSet<&'a Name>,
    ) -> usize {
        let mut n = 0;
        for sel in &set.node.items {
            n += match &sel.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(i) => walk(doc, &i.node.selection_set, seen),
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    match doc.fragments.get(name) {
                        Some(frag) if seen.insert(name) => {
                            walk(doc, &frag.node.selection_set, seen)
                        }
                        _ => 0,
                    }
                }
            };
        }
        n
    }
    walk(doc, set, &mut HashSet::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn doc(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn aliases_are_counted_in_operations_and_fragments() {
        let d = doc("query { a: me { b: id } ...F } fragment F on Query { c: me { id } }");
        assert_eq!(count_aliases(&d), 3);
        assert_eq!(count_aliases(&doc("{ me { id } }")), 0);
    }

    #[test]
    fn root_fields_expand_fragments_once_and_survive_cycles() {
        let d = doc(
            "{ a: me { id } b: me { id } ...F ... on Query { c: me { id } } } fragment F on Query { d: me { id } ...F }",
        );
        let (_, op) = d.operations.iter().next().unwrap();
        assert_eq!(root_fields(&d, &op.node.selection_set), 4);
    }
}
