//! Parsed documents, kept by their text. Clients send the same few
//! operations over and over; parsing one is a good part of what a small
//! request costs, so each distinct text is parsed once and its syntax tree
//! reused. Validation and every limit still run on each request: only the
//! parse is saved.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

/// Longer texts are parsed each time rather than kept.
const MAX_TEXT: usize = 16 * 1024;

/// A bounded cache of syntax trees by query text.
pub struct ParsedDocuments {
    cache: Option<moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>>,
}

impl std::fmt::Debug for ParsedDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedDocuments")
            .field("enabled", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl ParsedDocuments {
    /// A cache holding at most `text_bytes` of query text (weighed by text
    /// length; a tree takes a small multiple of its text). Zero turns it
    /// off.
    pub fn new(text_bytes: u64) -> Self {
        let cache = (text_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .weigher(|k: &Arc<str>, _: &Arc<ExecutableDocument>| {
                    u32::try_from(k.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(text_bytes)
                .build()
        });
        Self { cache }
    }

    /// Gives `request` its syntax tree: the kept one for a text seen
    /// before, otherwise parsed now and kept if it parses. A text that does
    /// not parse is left alone for execution to report.
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        let Some(cache) = &self.cache else {
            return;
        };
        if request.query.len() > MAX_TEXT {
            return;
        }
        if let Some(doc) = cache.get(request.query.as_str()) {
            request.set_parsed_query(ExecutableDocument::clone(&doc));
            return;
        }
        if let Ok(doc) = request.parsed_query() {
            let doc = Arc::new(doc.clone());
            cache.insert(request.query.as_str().into(), doc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_parsed_once_and_its_tree_reused() {
        let docs = ParsedDocuments::new(1024 * 1024);
        let mut first = async_graphql::Request::new("{ me { id } }");
        docs.prepare(&mut first);
        let Some(cache) = &docs.cache else {
            panic!("the cache is on");
        };
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1);
        let mut second = async_graphql::Request::new("{ me { id } }");
        docs.prepare(&mut second);
        let tree = second.parsed_query().map(|d| format!("{d:?}"));
        assert_eq!(
            tree.ok(),
            first.parsed_query().ok().map(|d| format!("{d:?}"))
        );
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1);
    }

    #[test]
    fn texts_that_do_not_parse_or_are_too_long_are_not_kept() {
        let docs = ParsedDocuments::new(1024 * 1024);
        let mut bad = async_graphql::Request::new("{ me { id ");
        docs.prepare(&mut bad);
        assert!(
            bad.parsed_query().is_err(),
            "the parse error is left for execution"
        );
        let long = format!("{{ me {{ id }} }} # {}", "x".repeat(MAX_TEXT));
        let mut big = async_graphql::Request::new(long);
        docs.prepare(&mut big);
        let Some(cache) = &docs.cache else {
            panic!("the cache is on");
        };
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 0);
    }

    #[test]
    fn zero_turns_it_off() {
        let docs = ParsedDocuments::new(0);
        let mut r = async_graphql::Request::new("{ me { id } }");
        docs.prepare(&mut r);
        assert!(docs.cache.is_none());
        assert!(r.parsed_query().is_ok());
    }
}
