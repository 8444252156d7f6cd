//! SeaORM entities: one module per schema. These mirror the tables the
//! migrations create; they are never exposed outside this crate's
//! repositories (which return domain types).

pub mod public;
pub mod tenant_b;
