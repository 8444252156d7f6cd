//! Limits on an operation's shape, checked before async-graphql's own
//! checks, validation or execution: how many selections the document
//! expands to once fragments are inlined (a few fragments that each spread
//! the previous one twice expand exponentially, and async-graphql's own
//! walks would follow every copy), how many aliases it writes, and how many
//! fields the executed operation selects at its root. Depth and complexity
//! are async-graphql's own limits (see [`crate::Limits`]).
//!
//! On a WebSocket (a [`SocketSession`] in the session data) only
//! subscriptions run, at most [`SocketSession::max`] at once: queries and
//! mutations go over HTTP, where persisted documents, rate limits and the
//! request timeout apply.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Request, ServerError, ServerResult};

use crate::error::ErrorCode;

/// The shape limits of [`crate::Limits`], as an extension of the schema.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShapeLimits {
    pub max_aliases: usize,
    pub max_root_fields: usize,
    pub max_selections: usize,
    /// Nesting of selection sets, fragments followed.
    pub max_nesting: usize,
    /// Directives on one field.
    pub max_directives: usize,
}

/// Answers, while a WebSocket stays open, whether its caller may still act
/// and with which context now: the credential may expire, a membership be
/// removed or its clients change after the connection was authenticated.
#[async_trait::async_trait]
pub trait Revalidate: Send + Sync {
    /// The caller's context now, or `None` when it may no longer act.
    async fn current(&self) -> Option<strata_persistence::context::VerifiedContext>;

    /// A turn to read the database for the caller now: charged to its
    /// rate-limit buckets and taken through its organization's in-flight
    /// gate, held until the read is done. `None` when the caller must wait:
    /// the read is skipped until the next poll.
    async fn turn(&self) -> Option<Turn>;
}

/// What [`Revalidate::turn`] hands out: held while a subscription reads.
pub type Turn = Box<dyn std::any::Any + Send>;

/// Marks a WebSocket connection's session data, counts its open
/// subscriptions, and re-checks its caller. Clones share the count: one
/// session per connection, a clone in each of its subscriptions.
#[derive(Clone)]
pub struct SocketSession {
    open: Arc<AtomicUsize>,
    max: usize,
    check: Option<Arc<dyn Revalidate>>,
}

impl std::fmt::Debug for SocketSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketSession")
            .field("open", &self.open.load(Ordering::Relaxed))
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl SocketSession {
    /// A session allowing `max` subscriptions at once.
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
            check: None,
        }
    }

    /// Re-checks the caller with `check` while subscriptions run.
    pub fn with_check(mut self, check: Arc<dyn Revalidate>) -> Self {
        self.check = Some(check);
        self
    }

    pub(crate) fn check(&self) -> Option<Arc<dyn Revalidate>> {
        self.check.clone()
    }

    /// Subscriptions allowed at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a slot for one more subscription, released when the guard is
    /// dropped (the subscription ends or is stopped).
    pub(crate) fn enter(&self) -> Option<SubscriptionSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| SubscriptionSlot(self.open.clone()))
    }
}

/// A slot among the connection's subscriptions for a subscription that
/// starts, held until it ends or is stopped (none off a WebSocket); a
/// connection holding all it may is refused with `RATE_LIMITED`.
pub(crate) fn subscription_slot(
    session: Option<&SocketSession>,
) -> async_graphql::Result<Option<SubscriptionSlot>> {
    match session {
        None => Ok(None),
        Some(session) => session.enter().map(Some).ok_or_else(|| {
            ErrorCode::RateLimited.error(format!(
                "at most {} subscriptions at once on one connection",
                session.max()
            ))
        }),
    }
}

/// The error a subscription ends with when its caller may no longer act.
pub(crate) fn revoked() -> async_graphql::Error {
    ErrorCode::Unauthenticated.error(
        "the credential of this connection no longer allows access: reconnect with a valid one",
    )
}

/// One open subscription of a [`SocketSession`].
#[derive(Debug)]
pub(crate) struct SubscriptionSlot(Arc<AtomicUsize>);

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ExtensionFactory for ShapeLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

impl ShapeLimits {
    /// Parses the request's document (kept in the request, so execution
    /// does not parse it again) and checks its shape.
    pub(crate) fn check(&self, request: &mut Request) -> ServerResult<()> {
        let query = request.query.clone();
        let doc = request.parsed_query().map_err(|e| parse_error(&query, e))?;
        let selections = expanded_selections(doc, self.max_selections)?;
        // Counted once the expansion is known to be finite (a fragment that
        // spreads itself was refused above).
        let nesting = nesting(doc);
        if nesting > self.max_nesting {
            return Err(too_complex(format!(
                "the operation nests selections {nesting} deep; at most {} are allowed",
                self.max_nesting
            )));
        }
        if most_directives(doc) > self.max_directives {
            return Err(too_complex(format!(
                "a field carries more than {} directives",
                self.max_directives
            )));
        }
        if selections > self.max_selections {
            return Err(too_complex(format!(
                "the operation expands to more than {} selections once its fragments are inlined",
                self.max_selections
            )));
        }
        let aliases = count_aliases(doc);
        if aliases > self.max_aliases {
            return Err(too_complex(format!(
                "the operation uses {aliases} aliases; at most {} are allowed",
                self.max_aliases
            )));
        }
        let root = doc
            .operations
            .iter()
            .map(|(_, op)| root_fields(doc, &op.node.selection_set))
            .max()
            .unwrap_or(0);
        if root > self.max_root_fields {
            return Err(too_complex(format!(
                "the operation selects {root} root fields; at most {} are allowed",
                self.max_root_fields
            )));
        }
        Ok(())
    }
}

/// On the WebSocket schema only: an extension makes async-graphql look up
/// every resolved field's type for its hooks, a cost HTTP requests do not
/// pay (they are checked by [`crate::check_shape`] before execution).
#[async_trait::async_trait]
impl Extension for ShapeLimits {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let operation_name = request.operation_name.clone();
        self.check(&mut request)?;
        let doc = request.parsed_query()?;
        if ctx.data_opt::<SocketSession>().is_some()
            && operation_type(doc, operation_name.as_deref()) != Some(OperationType::Subscription)
        {
            let mut err = ServerError::new(
                "only subscriptions run over the WebSocket: send queries and mutations to POST /graphql",
                None,
            );
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", ErrorCode::BadUserInput.as_str());
            err.extensions = Some(ext);
            return Err(err);
        }
        next.run(ctx, request).await
    }
}

/// The type of the operation a request would run, if it names one the
/// document has (or the document has only one).
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    }
}

/// Whether the operation `name` of `doc` is a query that selects only
/// introspection fields (`__schema`, `__type`, `__typename`) at its root:
/// such a query reads no tenant data, and tools send deep ones.
pub fn is_introspection_only(doc: &ExecutableDocument, name: Option<&str>) -> bool {
    let op = match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    };
    op.is_some_and(|op| {
        op.node.ty == OperationType::Query
            && !op.node.selection_set.node.items.is_empty()
            && op.node.selection_set.node.items.iter().all(|sel| {
                matches!(&sel.node, Selection::Field(f) if f.node.name.node.starts_with("__"))
            })
    })
}

/// Selections of every operation with fragments inlined, counted without
/// inlining them: each fragment's size is computed once. Stops counting
/// past `cap`; a fragment that spreads itself is an error.
fn expanded_selections(doc: &ExecutableDocument, cap: usize) -> ServerResult<usize> {
    fn set_size<'a>(
        doc: &'a ExecutableDocument,
        set: &'a Positioned<SelectionSet>,
        memo: &mut HashMap<&'a Name, Option<usize>>,
        cap: usize,
    ) -> ServerResult<usize> {
        let mut n: usize = 0;
        for sel in &set.node.items {
            let add = match &sel.node {
                Selection::Field(f) => 1 + set_size(doc, &f.node.selection_set, memo, cap)?,
                Selection::InlineFragment(i) => set_size(doc, &i.node.selection_set, memo, cap)?,
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    match memo.get(name) {
                        Some(Some(size)) => *size,
                        // Being computed: the fragment spreads itself.
                        Some(None) => {
                            return Err(too_complex(format!("fragment {name} spreads itself")));
                        }
                        None => match doc.fragments.get(name) {
                            // Unknown fragments are reported by validation.
                            None => 0,
                            Some(frag) => {
                                memo.insert(name, None);
                                let size = set_size(doc, &frag.node.selection_set, memo, cap)?;
                                memo.insert(name, Some(size));
                                size
                            }
                        },
                    }
                }
            };
            n = n.saturating_add(add).min(cap.saturating_add(1));
        }
        Ok(n)
    }
    let mut memo = HashMap::new();
    let mut total: usize = 0;
    for (_, op) in doc.operations.iter() {
        total = total
            .saturating_add(set_size(doc, &op.node.selection_set, &mut memo, cap)?)
            .min(cap.saturating_add(1));
    }
    Ok(total)
}

/// A document that does not parse, coded by the parser's own error: past
/// its nesting limit it is too complex, anything else is bad input. Only
/// failures are parsed a second time, for the typed error.
fn parse_error(query: &str, err: ServerError) -> ServerError {
    use async_graphql::parser::Error;
    let code = match async_graphql::parser::parse_query(query) {
        Err(Error::RecursionLimitExceeded) => ErrorCode::QueryTooComplex,
        _ => ErrorCode::BadUserInput,
    };
    let mut err = err;
    let mut ext = err.extensions.take().unwrap_or_default();
    ext.set("code", code.as_str());
    err.extensions = Some(ext);
    err
}

/// How deep the document's selection sets nest, fragments followed.
fn nesting(doc: &ExecutableDocument) -> usize {
    fn set_depth<'a>(
        doc: &'a ExecutableDocument,
        set: &'a Positioned<SelectionSet>,
        memo: &mut HashMap<&'a Name, usize>,
    ) -> usize {
        let mut deepest = 0;
        for sel in &set.node.items {
            let d = match &sel.node {
                Selection::Field(f) if f.node.selection_set.node.items.is_empty() => 0,
                Selection::Field(f) => 1 + set_depth(doc, &f.node.selection_set, memo),
                Selection::InlineFragment(i) => set_depth(doc, &i.node.selection_set, memo),
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if let Some(d) = memo.get(name) {
                        *d
                    } else if let Some(frag) = doc.fragments.get(name) {
                        // Marked before it is walked: a cycle counts as flat.
                        memo.insert(name, 0);
                        let d = set_depth(doc, &frag.node.selection_set, memo);
                        memo.insert(name, d);
                        d
                    } else {
                        0
                    }
                }
            };
            deepest = deepest.max(d);
        }
        deepest
    }
    let mut memo = HashMap::new();
    doc.operations
        .iter()
        .map(|(_, op)| 1 + set_depth(doc, &op.node.selection_set, &mut memo))
        .max()
        .unwrap_or(0)
}

/// The most directives any one field of the document carries.
fn most_directives(doc: &ExecutableDocument) -> usize {
    fn walk(set: &Positioned<SelectionSet>) -> usize {
        set.node
            .items
            .iter()
            .map(|sel| match &sel.node {
                Selection::Field(f) => f.node.directives.len().max(walk(&f.node.selection_set)),
                Selection::InlineFragment(i) => walk(&i.node.selection_set),
                Selection::FragmentSpread(_) => 0,
            })
            .max()
            .unwrap_or(0)
    }
    doc.operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set))
        .chain(doc.fragments.values().map(|f| walk(&f.node.selection_set)))
        .max()
        .unwrap_or(0)
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
        seen: &mut std::collections::HashSet<&'a Name>,
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
    walk(doc, set, &mut std::collections::HashSet::new())
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
    fn fragment_bombs_are_counted_without_being_expanded() {
        let mut q = String::from("query { ...F30 } fragment F0 on Query { me { role } }");
        for i in 1..=30 {
            q.push_str(&format!(
                " fragment F{i} on Query {{ ...F{j} ...F{j} }}",
                j = i - 1
            ));
        }
        let d = doc(&q);
        assert_eq!(expanded_selections(&d, 2000).unwrap(), 2001);
        let small = doc("{ a: me { role } ...F } fragment F on Query { me { role } }");
        assert_eq!(expanded_selections(&small, 2000).unwrap(), 4);
        let cycle = doc("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }");
        assert!(expanded_selections(&cycle, 2000).is_err());
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
