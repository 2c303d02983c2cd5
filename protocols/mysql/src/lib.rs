//! MySQL / MariaDB client/server protocol, sans-IO. (Placeholder until the parser lands.)
#![forbid(unsafe_code)]

use dbtap_core::{
    Abandon, Cx, DbEvent, Direction, Input, Probe, Progress, ProtocolSpec, SessionOpts,
    StreamParser,
};

/// Registration of the MySQL protocol.
pub const SPEC: ProtocolSpec = ProtocolSpec {
    name: "mysql",
    default_ports: &[3306],
    probe,
    new_parser,
};

/// Placeholder probe.
pub fn probe(_dir: Direction, _head: &[u8]) -> Probe {
    Probe::NotForUs
}

fn new_parser(_opts: SessionOpts) -> Box<dyn StreamParser> {
    Box::new(MysqlParser)
}

/// Placeholder parser.
pub struct MysqlParser;

impl StreamParser for MysqlParser {
    fn handle(&mut self, _: &Cx<'_>, _: Direction, _: Input<'_>, _: &mut Vec<DbEvent>) -> Progress {
        Progress::Abandon(Abandon::NotThisProtocol)
    }
}
