//! dbtap: database activity audit sensor.
