//! Just enough of a TLS ClientHello to recognise PostgreSQL 17's direct TLS connections
//! (`sslnegotiation=direct`): "the client sends a TLS ClientHello as the very first message,
//! without an SSLRequest; the ALPN extension must name `postgresql`". Reads the record and
//! handshake headers (RFC 8446 §5.1, §4.1.2) and two extensions: ALPN (RFC 7301, type 16) and
//! server_name (RFC 6066, type 0). Bounded by the bytes given; never panics.

use crate::wire::Reader;

/// The ALPN protocol id PostgreSQL requires for direct TLS.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// What the ALPN extension of a ClientHello says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// The list names `postgresql`.
    Postgresql,
    /// The list names other protocols only (h2, http/1.1, …).
    Other,
    /// The ClientHello has no ALPN extension.
    Absent,
}

/// What a ClientHello head tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// ALPN verdict, `None` when the extensions are not all in the bytes given.
    pub alpn: Option<Alpn>,
    /// The host name of the server_name extension.
    pub sni: Option<&'a [u8]>,
}

/// True when `b` starts like a TLS handshake record (content type 22, version 3.x).
pub fn is_handshake_record(b: &[u8]) -> bool {
    matches!(b, [0x16, 0x03, 0x00..=0x04, ..])
}

/// Read the ClientHello in the TLS record at the start of `b`. `None` when `b` is not a TLS
/// handshake record holding a ClientHello.
pub fn client_hello(b: &[u8]) -> Option<Hello<'_>> {
    if !is_handshake_record(b) {
        return None;
    }
    let mut r = Reader::new(b);
    r.take(3)?;
    let rec_len = r.i16()? as u16 as usize;
    let rec = Reader::new(r.rest());
    // A record fragment can be shorter than the handshake message; read what is there.
    let rec = rec.peek_rest().get(..rec_len.min(rec.remaining()))?;
    let mut h = Reader::new(rec);
    if h.u8()? != 1 {
        return None; // not a ClientHello
    }
    h.take(3)?; // handshake length
    h.take(2 + 32)?; // legacy_version, random
    let sid = h.u8()? as usize;
    let unknown = Hello {
        alpn: None,
        sni: None,
    };
    let Some(_) = h.take(sid) else {
        return Some(unknown);
    };
    let parts = (|| {
        let cs = h.i16()? as u16 as usize;
        h.take(cs)?;
        let comp = h.u8()? as usize;
        h.take(comp)?;
        Some(())
    })();
    if parts.is_none() {
        return Some(unknown);
    }
    if h.is_empty() {
        // No extensions at all.
        return Some(Hello {
            alpn: Some(Alpn::Absent),
            sni: None,
        });
    }
    let Some(ext_len) = h.i16().map(|n| n as u16 as usize) else {
        return Some(unknown);
    };
    let complete = h.remaining() >= ext_len;
    let mut e = Reader::new(h.peek_rest().get(..ext_len.min(h.remaining()))?);
    let mut alpn = None;
    let mut sni = None;
    while let (Some(ty), Some(len)) = (e.i16(), e.i16()) {
        let Some(data) = e.take(len as u16 as usize) else {
            break;
        };
        match ty as u16 {
            16 => alpn = Some(alpn_list(data)),
            0 => sni = server_name(data).or(sni),
            _ => {}
        }
    }
    let alpn = match alpn {
        Some(a) => Some(a),
        None if complete => Some(Alpn::Absent),
        None => None,
    };
    Some(Hello { alpn, sni })
}

fn alpn_list(data: &[u8]) -> Alpn {
    let mut r = Reader::new(data);
    let Some(n) = r.i16() else { return Alpn::Other };
    let mut l = Reader::new(r.take(n as u16 as usize).unwrap_or_default());
    while let Some(len) = l.u8() {
        match l.take(len as usize) {
            Some(ALPN_POSTGRESQL) => return Alpn::Postgresql,
            Some(_) => {}
            None => break,
        }
    }
    Alpn::Other
}

fn server_name(data: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(data);
    let n = r.i16()? as u16 as usize;
    let mut l = Reader::new(r.take(n)?);
    while let Some(ty) = l.u8() {
        let len = l.i16()? as u16 as usize;
        let name = l.take(len)?;
        if ty == 0 && !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic()) {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ClientHello record with the given extensions (type, data).
    pub fn hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (t, d) in exts {
            ext.extend_from_slice(&t.to_be_bytes());
            ext.extend_from_slice(&(d.len() as u16).to_be_bytes());
            ext.extend_from_slice(d);
        }
        let mut body = vec![0x03, 0x03]; // legacy_version TLS 1.2
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(0); // session id length
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[0x01, 0x00]); // compression: null
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1]; // ClientHello
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    pub fn alpn_ext(names: &[&[u8]]) -> (u16, Vec<u8>) {
        let mut l = Vec::new();
        for n in names {
            l.push(n.len() as u8);
            l.extend_from_slice(n);
        }
        let mut d = (l.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&l);
        (16, d)
    }

    pub fn sni_ext(host: &[u8]) -> (u16, Vec<u8>) {
        let mut l = vec![0u8];
        l.extend_from_slice(&(host.len() as u16).to_be_bytes());
        l.extend_from_slice(host);
        let mut d = (l.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&l);
        (0, d)
    }

    #[test]
    fn alpn_and_sni() {
        let h = hello(&[sni_ext(b"db.example"), alpn_ext(&[b"postgresql"])]);
        let c = client_hello(&h).unwrap();
        assert_eq!(c.alpn, Some(Alpn::Postgresql));
        assert_eq!(c.sni, Some(&b"db.example"[..]));
        let h = hello(&[alpn_ext(&[b"h2", b"http/1.1"])]);
        assert_eq!(client_hello(&h).unwrap().alpn, Some(Alpn::Other));
        let h = hello(&[]);
        assert_eq!(client_hello(&h).unwrap().alpn, Some(Alpn::Absent));
        // Cut inside the extensions: unknown.
        let h = hello(&[sni_ext(b"db.example"), alpn_ext(&[b"postgresql"])]);
        assert_eq!(client_hello(&h[..h.len() - 4]).unwrap().alpn, None);
        for n in 0..h.len() {
            let _ = client_hello(&h[..n]);
        }
        assert!(client_hello(b"GET / HTTP/1.1").is_none());
    }
}
