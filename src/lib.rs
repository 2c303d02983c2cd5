//! dbtap: database activity audit sensor.
pub mod capture;
pub mod decode;
