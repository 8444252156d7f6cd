//! A shortcut for objects asked only for scalar fields.
//!
//! Every field of an object normally goes through the executor's general
//! path: a future per field, a resolver looked up by name, the results
//! joined and put in order. For a page of 50 campaigns asked for five
//! scalars each, that machinery is most of what the request costs. When a
//! selection set holds nothing but plain fields that are scalars of the
//! type (no arguments, directives, fragments or sub-selections), the
//! object is built directly from its values instead, with the same keys,
//! order and values the general path gives. Anything else takes the
//! general path unchanged.

use std::borrow::Cow;

use async_graphql::context::ContextSelectionSet;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::{Name, OutputType, Positioned, ServerResult, Value};

/// An object whose scalar fields can be read without resolvers.
pub trait ScalarFields {
    /// The value of scalar field `name`, as its resolver would give it;
    /// `None` when `name` is not one of the type's scalar fields.
    fn scalar(&self, name: &str) -> Option<Value>;

    /// Whether `name` is one of the type's scalar fields.
    fn is_scalar(name: &str) -> bool;
}

/// `T`, resolved directly when only its scalars are selected. The schema
/// sees `T` itself: same name, same fields.
pub struct Leaves<T>(pub T);

/// Whether every selection in `ctx` is a plain scalar field of `T`.
fn only_scalars<T: ScalarFields>(ctx: &ContextSelectionSet<'_>) -> bool {
    ctx.item.node.items.iter().all(|sel| match &sel.node {
        Selection::Field(f) => {
            let f = &f.node;
            f.arguments.is_empty()
                && f.directives.is_empty()
                && f.selection_set.node.items.is_empty()
                && (f.name.node == "__typename" || T::is_scalar(&f.name.node))
        }
        Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
    })
}

fn build<T: ScalarFields + OutputType>(value: &T, ctx: &ContextSelectionSet<'_>) -> Option<Value> {
    let items = &ctx.item.node.items;
    let mut map = async_graphql::indexmap::IndexMap::with_capacity(items.len());
    for sel in items {
        let Selection::Field(f) = &sel.node else {
            return None;
        };
        let f: &Field = &f.node;
        let v = if f.name.node == "__typename" {
            Value::String(value.introspection_type_name().into_owned())
        } else {
            value.scalar(&f.name.node)?
        };
        // A key asked for twice keeps its first place and value, as the
        // general path does.
        map.entry(Name::clone(&f.response_key().node)).or_insert(v);
    }
    Some(Value::Object(map))
}

impl<T: ScalarFields + OutputType> OutputType for Leaves<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if only_scalars::<T>(ctx)
            && let Some(v) = build(&self.0, ctx)
        {
            return Ok(v);
        }
        self.0.resolve(ctx, field).await
    }
}
