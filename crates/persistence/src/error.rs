//! Mapping database errors to domain errors, in one place.
//!
//! Nothing of the database's message (SQLSTATE detail, constraint names, key
//! values) ever reaches a domain error's message: the cause is kept as a
//! source for logs, and the user-facing part is fixed text.

use sea_orm::{DbErr, RuntimeErr, sqlx};
use strata_domain::DomainError;

/// Unique constraints and the input field each one protects.
const UNIQUE_FIELDS: &[(&str, &str, &str)] = &[
    (
        "organizations_slug_key",
        "slug",
        "an organization with this slug already exists",
    ),
    (
        "workspace_entities_org_slug_key",
        "slug",
        "a client with this slug already exists in this organization",
    ),
    (
        "entity_data_one_guidelines_per_client",
        "clientId",
        "this client already has brand guidelines",
    ),
    (
        "memberships_pkey",
        "userId",
        "this user is already a member of the organization",
    ),
];

/// The SQLSTATE and the constraint of a database error, as one PostgreSQL
/// would report them. A Citus coordinator relays a worker's error with the
/// shard's constraint name (`campaigns_pkey_102008`), no constraint field,
/// and sometimes `XX000` in place of the worker's code; both are read back
/// from the message then.
pub fn database_error_parts(err: &DbErr) -> (Option<String>, Option<String>) {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return (None, None);
    };
    let Some(db) = e.as_database_error() else {
        return (None, None);
    };
    let code = db.code().map(|c| c.into_owned());
    let message = db.message();
    let constraint = db.constraint().map(str::to_owned).or_else(|| {
        let (_, rest) = message.split_once("constraint \"")?;
        let (name, _) = rest.split_once('"')?;
        Some(without_shard_suffix(name).to_owned())
    });
    let relayed = [
        ("violates foreign key constraint", "23503"),
        ("violates unique constraint", "23505"),
        ("violates check constraint", "23514"),
        ("violates not-null constraint", "23502"),
        ("violates row-level security policy", "42501"),
    ];
    let code = match code.as_deref() {
        Some("XX000") | None => relayed
            .iter()
            .find(|(text, _)| message.contains(text))
            .map(|(_, c)| (*c).to_owned())
            .or(code),
        _ => code,
    };
    (code, constraint)
}

/// A shard's name for a constraint without Citus's `_<shard id>`.
fn without_shard_suffix(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// Maps a database error to a domain error.
pub fn map_db_err(err: DbErr) -> DomainError {
    match &err {
        DbErr::RecordNotFound(_) => return DomainError::NotFound,
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            return DomainError::Unavailable(Box::new(err));
        }
        _ => {}
    }
    if let DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) = &err {
        match e.as_ref() {
            sqlx::Error::Database(_) => {
                let (code, constraint) = database_error_parts(&err);
                let code = code.unwrap_or_default();
                let constraint = constraint.unwrap_or_default();
                match code.as_str() {
                    // unique_violation
                    "23505" => {
                        if let Some((_, field, message)) =
                            UNIQUE_FIELDS.iter().find(|(c, _, _)| *c == constraint)
                        {
                            return DomainError::Conflict {
                                field,
                                message: (*message).to_owned(),
                            };
                        }
                    }
                    // foreign_key_violation: the parent does not exist for
                    // this tenant, which is exactly "not found".
                    "23503" => return DomainError::NotFound,
                    // character_not_in_repertoire, untranslatable_character:
                    // text PostgreSQL cannot store (a NUL, `\u0000` in
                    // JSON) is the caller's input, not our failure.
                    "22021" | "22P05" => {
                        return DomainError::Validation(strata_domain::ValidationError::new(
                            "input",
                            "must not contain NUL characters",
                        ));
                    }
                    // query_canceled: the request's statement timeout.
                    "57014" => return DomainError::TimedOut,
                    // too many connections, admin shutdown, cannot connect
                    // now.
                    "53300" | "57P01" | "57P03" => {
                        return DomainError::Unavailable(Box::new(err));
                    }
                    _ => {}
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => return DomainError::Unavailable(Box::new(err)),
            _ => {}
        }
    }
    DomainError::Internal(Box::new(err))
}
