//! MySQL / MariaDB client/server protocol, sans-IO.
#![forbid(unsafe_code)]
