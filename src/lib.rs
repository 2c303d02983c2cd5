//! dbtap: database activity audit sensor.
pub mod capture;
