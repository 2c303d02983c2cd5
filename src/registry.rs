//! The protocols dbtap knows, and which ports they are expected (or forced) on. Registering a
//! protocol here is the only protocol-specific line outside its crate.

use dbtap_core::ProtocolSpec;

/// Every protocol, in probe order.
pub const ALL: &[ProtocolSpec] = &[
    dbtap_mysql::SPEC,
    dbtap_pgsql::SPEC,
    dbtap_tds::SPEC,
    dbtap_tns::SPEC,
];

/// Registered protocols plus the user's port overrides.
#[derive(Debug, Clone)]
pub struct Registry {
    specs: Vec<ProtocolSpec>,
    /// `--port NAME=PORT`: flows on PORT are parsed as NAME without probing.
    forced: Vec<(u16, usize)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            specs: ALL.to_vec(),
            forced: Vec::new(),
        }
    }
}

/// A `--port` value that names no known protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (known: {1})")]
pub struct UnknownProtocol(pub String, pub String);

impl Registry {
    /// A registry of exactly these protocols (tests, embedding).
    pub fn with_specs(specs: Vec<ProtocolSpec>) -> Self {
        Registry {
            specs,
            forced: Vec::new(),
        }
    }

    /// Force `port` to protocol `name`.
    pub fn force_port(&mut self, name: &str, port: u16) -> Result<(), UnknownProtocol> {
        let idx = self
            .specs
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                UnknownProtocol(
                    name.to_owned(),
                    self.specs
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })?;
        self.forced.retain(|(p, _)| *p != port);
        self.forced.push((port, idx));
        Ok(())
    }

    /// The protocols, in probe order.
    pub fn specs(&self) -> &[ProtocolSpec] {
        &self.specs
    }

    /// Protocol at `idx`.
    pub fn spec(&self, idx: usize) -> Option<&ProtocolSpec> {
        self.specs.get(idx)
    }

    /// The protocol forced on `port`, if any.
    pub fn forced(&self, port: u16) -> Option<usize> {
        self.forced
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, i)| *i)
    }

    /// Whether `port` is a default port of protocol `idx`.
    pub fn is_default_port(&self, idx: usize, port: u16) -> bool {
        self.specs
            .get(idx)
            .is_some_and(|s| s.default_ports.contains(&port))
    }
}
