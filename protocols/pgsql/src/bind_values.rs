//! The parameter values of a Bind (and the arguments of a FunctionCall): decoded at once, or
//! stepped over by the parser and decoded when the record is written.
//!
//! Bind (PostgreSQL protocol, "Message Formats"): portal, statement, the parameter format codes,
//! then Int16 the number of values and for each an Int32 length (-1 for NULL) and that many
//! bytes.

use std::sync::Arc;

use dbtap_core::{Limits, Param, ParamDecoder, ParamValue};

use crate::charset::Charset;
use crate::messages::BindHead;
use crate::types;
use crate::wire::Reader;

/// Decode the values of `head` (types by `oids`, in order) into `out`. Returns whether all of
/// them were in the body (and within the bound on parameters).
pub fn decode_values(
    charset: Charset,
    head: &BindHead<'_>,
    oids: &[u32],
    limits: &Limits,
    out: &mut Vec<Param>,
) -> bool {
    let bounds = types::Bounds {
        max_len: limits.max_param_len,
        max_elements: limits.max_params,
    };
    let n = head.nparams.min(limits.max_params);
    out.reserve(n);
    let mut r = Reader::new(head.values);
    for i in 0..n {
        let oid = oids.get(i).copied().unwrap_or(types::oid::UNSPECIFIED);
        let binary = head.binary(i);
        let (value, truncated) = match r.i32() {
            Some(-1) => (ParamValue::Null, false),
            Some(len) if len >= 0 => match r.take(len as usize) {
                Some(v) => types::decode(oid, binary, v, charset, bounds),
                None => {
                    // The value runs past the head that was read (a cut message).
                    let v = r.rest();
                    let (val, _) = types::decode(oid, binary, v, charset, bounds);
                    let val = if binary { ParamValue::Undecodable } else { val };
                    out.push(Param {
                        name: None,
                        type_name: types::type_name(oid),
                        value: val,
                        truncated: true,
                    });
                    return false;
                }
            },
            _ => return false,
        };
        out.push(Param {
            name: None,
            type_name: types::type_name(oid),
            value,
            truncated,
        });
    }
    head.nparams <= limits.max_params
}

/// What [`decode_values`] would return for `head`, found by reading the lengths only, and how
/// many bytes of `head.values` it would read.
pub fn step_over_values(head: &BindHead<'_>, limits: &Limits) -> (bool, usize) {
    let n = head.nparams.min(limits.max_params);
    let mut r = Reader::new(head.values);
    for _ in 0..n {
        match r.i32() {
            Some(-1) => {}
            Some(len) if len >= 0 => {
                if r.take(len as usize).is_none() {
                    // Decoding reads the rest of the values for the cut one.
                    return (false, head.values.len());
                }
            }
            _ => return (false, head.values.len()),
        }
    }
    let left = r.rest().len();
    (head.nparams <= limits.max_params, head.values.len() - left)
}

/// A Bind's values kept as their wire bytes, with what decoding them needs: the same values
/// [`decode_values`] gives, decoded on the record stage's thread.
pub struct BindValues {
    charset: Charset,
    oids: Arc<[u32]>,
    formats: Vec<u8>,
    nparams: usize,
    values: Vec<u8>,
    limits: Limits,
}

impl BindValues {
    /// The values of `head` (`used` bytes of them, from [`step_over_values`]).
    pub fn new(
        charset: Charset,
        head: &BindHead<'_>,
        used: usize,
        oids: Arc<[u32]>,
        limits: &Limits,
    ) -> Self {
        BindValues {
            charset,
            oids,
            formats: head.formats.to_vec(),
            nparams: head.nparams,
            values: head.values.get(..used).unwrap_or(head.values).to_vec(),
            limits: limits.clone(),
        }
    }
}

/// Sizes only: the values are the application's data.
impl std::fmt::Debug for BindValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindValues")
            .field("nparams", &self.nparams)
            .field("bytes", &self.values.len())
            .finish_non_exhaustive()
    }
}

impl ParamDecoder for BindValues {
    fn decode_into(&self, out: &mut Vec<Param>) {
        let head = BindHead {
            portal: &[],
            statement: &[],
            formats: &self.formats,
            nparams: self.nparams,
            values: &self.values,
        };
        decode_values(self.charset, &head, &self.oids, &self.limits, out);
    }

    fn heap_bytes(&self) -> usize {
        self.formats.capacity() + self.values.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtap_core::DeferredParams;

    /// Bind values: format codes, then (length, bytes) per value (None: NULL).
    fn values(vals: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in vals {
            match x {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
        v.extend_from_slice(&[0, 1, 0, 0]); // result format codes: what follows the values
        v
    }

    #[test]
    fn values_stepped_over_decode_later_to_what_decoding_them_at_once_gives() {
        // int4 binary 42, NULL, text 'héllo', int8 binary, bytea text, at every cut, with room
        // for all values or for three.
        let oids: Arc<[u32]> = Arc::new([23, 25, 25, 20, 17]);
        let formats = [0, 5, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0];
        let vals = values(&[
            Some(&42i32.to_be_bytes()),
            None,
            Some("héllo".as_bytes()),
            Some(&(-7i64).to_be_bytes()),
            Some(b"\\x00ff"),
        ]);
        for max_params in [5, 3] {
            let limits = Limits {
                max_params,
                ..Limits::default()
            };
            for cut in 0..=vals.len() {
                for nparams in [5, 6] {
                    let head = BindHead {
                        portal: &[],
                        statement: &[],
                        formats: &formats[2..],
                        nparams,
                        values: &vals[..cut],
                    };
                    let mut at_once = Vec::new();
                    let complete =
                        decode_values(Charset::default(), &head, &oids, &limits, &mut at_once);
                    let (stepped, used) = step_over_values(&head, &limits);
                    assert_eq!(stepped, complete, "cut {cut}, {nparams} of {max_params}");
                    let later = DeferredParams::new(BindValues::new(
                        Charset::default(),
                        &head,
                        used,
                        oids.clone(),
                        &limits,
                    ));
                    assert_eq!(
                        later.decode(),
                        at_once,
                        "cut {cut}, {nparams} of {max_params}"
                    );
                }
            }
        }
        // The whole message: five values, the last byte used is the last value's.
        let head = BindHead {
            portal: &[],
            statement: &[],
            formats: &formats[2..],
            nparams: 5,
            values: &vals,
        };
        assert_eq!(
            step_over_values(&head, &Limits::default()),
            (true, vals.len() - 4)
        );
        let later = DeferredParams::new(BindValues::new(
            Charset::default(),
            &head,
            vals.len() - 4,
            oids,
            &Limits::default(),
        ));
        let got: Vec<ParamValue> = later.decode().into_iter().map(|p| p.value).collect();
        assert_eq!(got[0], ParamValue::Int(42));
        assert_eq!(got[1], ParamValue::Null);
        assert_eq!(got[2], ParamValue::Text("héllo".into()));
        assert_eq!(got[3], ParamValue::Int(-7));
        assert!(!format!("{later:?}").contains("104"), "{later:?}");
    }
}
