//! dbtap: database activity audit sensor.
pub mod detect;
pub mod engine;
pub mod pipeline;
pub mod reassembly;
pub mod record;
pub mod registry;
pub mod session;
pub mod sink;
pub mod stats;
mod testkit;
