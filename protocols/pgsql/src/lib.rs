//! PostgreSQL frontend/backend protocol (3.0 and 3.2), sans-IO. (Being built: not registered
//! with the engine yet.)
#![forbid(unsafe_code)]
