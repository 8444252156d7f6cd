//! SeaORM entities: one module per schema. Each mirrors a table the
//! migrations create and a repository reads or writes through SeaORM (tables
//! reached only by raw SQL, such as `public.users` and `public.api_keys`,
//! have none); they are never exposed outside this crate's repositories
//! (which return domain types).

pub mod public;
pub mod tenant_b;
