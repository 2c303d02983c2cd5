//! dbtap: database activity audit sensor.
pub mod reassembly;
