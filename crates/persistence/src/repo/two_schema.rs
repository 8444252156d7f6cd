//! The one primitive for content that lives in both schemas: SMEs' copy of a
//! table in `public`, agencies' copy in `tenant_b`, with the same logical
//! columns and, on the agency side, `client_id`.
//!
//! A table is named by the enum of the columns both copies share, which
//! implements [`TwoSchemaTable`] and names the two SeaORM entities. Each
//! entity implements [`InSchema`] for it: an exhaustive `match` from the
//! logical column to the entity's own `Column`, so a column missing or
//! misspelt on either side does not compile. Repositories write each
//! statement once, generic over `E: InSchema<T>`, and [`dispatch!`] runs it
//! on the copy of the context's organization type.
//!
//! The copy also knows the scope every tenant statement filters by: the
//! context's organization, the copy's kind of row (when one table holds
//! several kinds of content), and on the agency side the context's clients.
//! Repositories still add these filters themselves (row-level security holds
//! the same line underneath); this module only spells them once.

use sea_orm::sea_query::{Expr, InsertStatement, Query};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QuerySelect, Select};
use strata_domain::ClientId;

use crate::repo::{any_of, client_visible, limited_clients};
use crate::tx::TenantTx;

/// A table that exists in both schemas, named by the enum of the columns
/// both copies share.
pub(crate) trait TwoSchemaTable: Copy + Send + Sync + 'static {
    /// The SMEs' copy, in `public`.
    type Sme: InSchema<Self>;
    /// The agencies' copy, in `tenant_b`.
    type Agency: InSchema<Self>;
    /// The organization column: every tenant table's key starts with it.
    const ORG_ID: Self;
}

/// One schema's copy of the two-schema table `T`: a SeaORM entity and the
/// mapping of `T`'s columns to its own.
pub(crate) trait InSchema<T: TwoSchemaTable>: EntityTrait {
    /// `client_id`: `Some` on the agency copy, `None` on the SME copy.
    const CLIENT_ID: Option<Self::Column>;

    /// The kind column and value of the rows that hold `T`, when the copy's
    /// table holds several kinds of content (`tenant_b.entity_data`).
    const KIND: Option<(Self::Column, &'static str)> = None;

    /// This copy's column for `c`.
    fn col(c: T) -> Self::Column;

    /// The rows of `T` of the context's organization, whatever their client.
    /// Only for statements about the organization as a whole (its quota);
    /// everything else filters by [`InSchema::in_scope`].
    fn in_org(tx: &TenantTx) -> Condition {
        let org = Condition::all().add(Self::col(T::ORG_ID).eq(tx.ctx().org_id().as_uuid()));
        match Self::KIND {
            Some((kind, value)) => org.add(kind.eq(value)),
            None => org,
        }
    }

    /// The rows of `T` the context may see: [`InSchema::in_org`] and, for a
    /// context limited to some clients of an agency, `client_id = ANY(<its
    /// clients>)`.
    fn in_scope(tx: &TenantTx) -> Condition {
        let org = Self::in_org(tx);
        match (Self::CLIENT_ID, limited_clients(tx)) {
            (Some(client), Some(ids)) => org.add(any_of(client, ids)),
            _ => org,
        }
    }

    /// The rows of `client` (every row when `None`), or `None` when `client`
    /// can match nothing in this context: SMEs have no clients, and a client
    /// outside the context's scope is like one that does not exist.
    fn of_client(tx: &TenantTx, client: Option<ClientId>) -> Option<Condition> {
        if !client_visible(tx, client) {
            return None;
        }
        Some(match (Self::CLIENT_ID, client) {
            (Some(col), Some(c)) => Condition::all().add(col.eq(c.as_uuid())),
            _ => Condition::all(),
        })
    }

    /// Selects `columns` and `client_id` (`NULL` on the SME copy, so that one
    /// row type reads both copies), from the rows in [`InSchema::in_scope`].
    fn select(tx: &TenantTx, columns: &[T]) -> Select<Self> {
        let mut q = Self::find().select_only();
        for c in columns {
            q = q.column(Self::col(*c));
        }
        let q = match Self::CLIENT_ID {
            Some(client) => q.column(client),
            None => q.column_as(Expr::cust("NULL::uuid"), CLIENT_ID_ALIAS),
        };
        q.filter(Self::in_scope(tx))
    }

    /// `INSERT` of one row of `T` with `values`, the context's organization,
    /// `client` on the agency copy and the kind of the copy's rows of `T`.
    fn insert_row(
        tx: &TenantTx,
        client: Option<ClientId>,
        values: impl IntoIterator<Item = (Self::Column, Expr)>,
    ) -> Result<InsertStatement, DbErr> {
        let mut cols = vec![Self::col(T::ORG_ID)];
        let mut vals: Vec<Expr> = vec![tx.ctx().org_id().as_uuid().into()];
        if let Some(col) = Self::CLIENT_ID {
            cols.push(col);
            vals.push(client.map(|c| c.as_uuid()).into());
        }
        if let Some((col, kind)) = Self::KIND {
            cols.push(col);
            vals.push(kind.into());
        }
        for (col, val) in values {
            cols.push(col);
            vals.push(val);
        }
        let mut insert = Query::insert();
        insert
            .into_table(Self::default().table_ref())
            .columns(cols)
            .values(vals)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        Ok(insert)
    }
}

/// `schema.table` of the copy of `T` that holds the content of `tx`'s
/// organization type.
pub(crate) fn table_name<T: TwoSchemaTable>(tx: &TenantTx) -> String {
    match tx.ctx().org_type() {
        strata_domain::OrgType::Sme => crate::repo::table_of::<T::Sme>(),
        strata_domain::OrgType::Agency => crate::repo::table_of::<T::Agency>(),
    }
}

/// The name [`InSchema::select`] gives the SME copy's `NULL` client, the
/// agency column's own name, so row types read `client_id` from both.
const CLIENT_ID_ALIAS: &str = "client_id";

/// Runs the generic `$f::<E>(args)` on the copy of `$table` that holds the
/// content of `$tx`'s organization type.
macro_rules! dispatch {
    ($tx:expr, $table:ty, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $tx.ctx().org_type() {
            strata_domain::OrgType::Sme => {
                $f::<<$table as $crate::repo::two_schema::TwoSchemaTable>::Sme>($($arg),*).await
            }
            strata_domain::OrgType::Agency => {
                $f::<<$table as $crate::repo::two_schema::TwoSchemaTable>::Agency>($($arg),*).await
            }
        }
    };
}
pub(crate) use dispatch;
