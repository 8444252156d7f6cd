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
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let constraint = db.constraint().unwrap_or_default();
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
