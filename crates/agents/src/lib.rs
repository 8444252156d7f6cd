//! AI agents: prompts built from one tenant context, and LLM providers.
//!
//! This crate never reads the database and never decides who may see what:
//! it receives exactly the inputs of one run, already scoped to one tenant
//! (and one client), from the GraphQL layer.
