//! The connection-phase state machine, as a pure transition function laid out as a table
//! (tls-parser's `tls_state_transition` style). The command phase's request/response pairing
//! lives in the parser; this table only says which phase a session is in.
//!
//! "Connection Phase" of the MySQL reference: the server greets (HandshakeV10), the client
//! answers with a HandshakeResponse (or an SSLRequest, after which everything is TLS), then
//! the server and client may exchange AuthSwitchRequest / AuthMoreData / auth data packets
//! until the server ends the phase with OK (command phase) or ERR (connection closed).

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing seen yet; the server speaks first.
    AwaitGreeting,
    /// Greeting seen; the client's handshake response is next.
    AwaitHandshake,
    /// Handshake response seen; auth exchange until OK or ERR.
    Auth,
    /// Commands and their responses.
    Command,
    /// TLS: nothing more is parsed.
    Encrypted,
    /// The connection is over (login refused or failed, or the client quit).
    Closed,
}

/// What happened, as far as the phase is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Server HandshakeV10/V9.
    Greeting,
    /// Server ERR instead of a greeting (e.g. 1130 host not allowed, 1040 too many connections).
    Refused,
    /// Client HandshakeResponse41/320.
    HandshakeResponse,
    /// Client SSLRequest.
    SslRequest,
    /// Server AuthSwitchRequest or AuthMoreData, or client auth data.
    AuthExchange,
    /// Server OK ending the auth exchange.
    AuthOk,
    /// Server ERR ending the auth exchange.
    AuthErr,
    /// Client COM_QUIT.
    Quit,
    /// A mid-stream pick-up found its footing in the command phase.
    Resynced,
    /// Client command (sequence id 0) while the auth exchange's answer was not seen: the server
    /// accepted the login (it closes the connection after a failed one).
    CommandAfterAuth,
}

/// An event that makes no sense in the current phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// The phase the session was in.
    pub phase: Phase,
    /// The event that did not fit.
    pub event: Event,
}

/// The next phase, or `Invalid` (the caller keeps the old phase and counts an anomaly).
pub fn transition(phase: Phase, event: Event) -> Result<Phase, Invalid> {
    use Event as E;
    use Phase as P;
    #[rustfmt::skip]
    let next = match (phase, event) {
        (P::AwaitGreeting,  E::Greeting)          => P::AwaitHandshake,
        (P::AwaitGreeting,  E::Refused)           => P::Closed,
        // The greeting was lost (capture started a moment late): the response still tells us
        // who logs in.
        (P::AwaitGreeting,  E::HandshakeResponse) => P::Auth,
        (P::AwaitGreeting,  E::SslRequest)        => P::Encrypted,
        (P::AwaitHandshake, E::HandshakeResponse) => P::Auth,
        (P::AwaitHandshake, E::SslRequest)        => P::Encrypted,
        (P::AwaitHandshake, E::Refused)           => P::Closed,
        (P::Auth,           E::AuthExchange)      => P::Auth,
        (P::Auth,           E::AuthOk)            => P::Command,
        (P::Auth,           E::AuthErr)           => P::Closed,
        (P::Auth,           E::CommandAfterAuth)  => P::Command,
        (P::Command,        E::Quit)              => P::Closed,
        (_,                 E::Resynced)          => P::Command,
        (phase, event) => return Err(Invalid { phase, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_paths() {
        let p = transition(Phase::AwaitGreeting, Event::Greeting).unwrap();
        let p = transition(p, Event::HandshakeResponse).unwrap();
        let p = transition(p, Event::AuthExchange).unwrap();
        assert_eq!(transition(p, Event::AuthOk), Ok(Phase::Command));
        assert_eq!(transition(p, Event::AuthErr), Ok(Phase::Closed));
        assert_eq!(transition(p, Event::CommandAfterAuth), Ok(Phase::Command));
        assert_eq!(
            transition(Phase::AwaitHandshake, Event::SslRequest),
            Ok(Phase::Encrypted)
        );
        assert_eq!(
            transition(Phase::Command, Event::Greeting),
            Err(Invalid {
                phase: Phase::Command,
                event: Event::Greeting
            })
        );
    }
}
