//! Ids bound as one array parameter: shared by the repositories and the
//! cross-tenant maintenance, which do not import each other.

/// A PostgreSQL array literal of ids, bound as one text parameter and cast
/// with `::uuid[]`, so a statement's text does not vary with the number of
/// ids (one prepared statement whatever the page size).
pub(crate) fn uuid_array(ids: impl IntoIterator<Item = uuid::Uuid>) -> String {
    let mut s = String::from("{");
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push('}');
    s
}
