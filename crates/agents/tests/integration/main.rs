//! Agents end to end: the OpenAI-compatible provider against a real local
//! HTTP server replaying recorded-shape streams, the offline provider, and
//! the contexts runs are built from.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod context;
mod offline;
mod openai;
mod support;
