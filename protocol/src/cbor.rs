//! Small helpers over minicbor for the strict, deterministic encoding Ferry
//! signs: definite-length maps with unsigned integer keys in ascending order,
//! no unknown keys, no duplicates. Encoding a value twice gives the same
//! bytes, and a decoder never guesses.

use minicbor::{Decoder, Encoder};

use crate::error::DecodeError;

pub(crate) type Enc = Encoder<Vec<u8>>;

pub(crate) fn encoder() -> Enc {
    Encoder::new(Vec::new())
}

/// Encoding into a `Vec` cannot fail; this unwraps the infallible error.
pub(crate) fn ok<T>(r: Result<T, minicbor::encode::Error<std::convert::Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e.into_write() {
            Some(never) => match never {},
            None => unreachable!("encoding to a Vec<u8> has no other error"),
        },
    }
}

/// Reads a map whose keys are small unsigned integers in ascending order.
pub(crate) struct MapReader<'a, 'b> {
    pub d: &'a mut Decoder<'b>,
    what: &'static str,
    remaining: u64,
    last: Option<u64>,
}

impl<'a, 'b> MapReader<'a, 'b> {
    pub fn new(d: &'a mut Decoder<'b>, what: &'static str) -> Result<Self, DecodeError> {
        let len = d
            .map()
            .map_err(|e| cbor_err(what, e))?
            .ok_or_else(|| DecodeError::invalid(what, "indefinite-length map"))?;
        Ok(MapReader {
            d,
            what,
            remaining: len,
            last: None,
        })
    }

    /// The next key, or `None` at the end of the map.
    pub fn next_key(&mut self) -> Result<Option<u64>, DecodeError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let k = self.d.u64().map_err(|e| cbor_err(self.what, e))?;
        if let Some(last) = self.last {
            if k <= last {
                return Err(DecodeError::invalid(
                    self.what,
                    format!("map key {k} out of order or repeated"),
                ));
            }
        }
        self.last = Some(k);
        Ok(Some(k))
    }

    pub fn unknown(&self, key: u64) -> DecodeError {
        DecodeError::invalid(self.what, format!("unknown field {key}"))
    }

    pub fn err(&self, e: minicbor::decode::Error) -> DecodeError {
        cbor_err(self.what, e)
    }

    pub fn str(&mut self) -> Result<String, DecodeError> {
        self.d
            .str()
            .map(str::to_owned)
            .map_err(|e| cbor_err(self.what, e))
    }

    pub fn bytes(&mut self) -> Result<&'b [u8], DecodeError> {
        self.d.bytes().map_err(|e| cbor_err(self.what, e))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.d.u64().map_err(|e| cbor_err(self.what, e))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.d.u32().map_err(|e| cbor_err(self.what, e))
    }
}

pub(crate) fn cbor_err(what: &'static str, source: minicbor::decode::Error) -> DecodeError {
    DecodeError::Cbor { what, source }
}

/// Fails unless the decoder consumed the whole input.
pub(crate) fn expect_end(d: &Decoder<'_>, what: &'static str) -> Result<(), DecodeError> {
    if d.position() != d.input().len() {
        return Err(DecodeError::invalid(
            what,
            format!("{} trailing bytes", d.input().len() - d.position()),
        ));
    }
    Ok(())
}

/// Fails when a required field was absent.
pub(crate) fn required<T>(v: Option<T>, what: &'static str, field: &str) -> Result<T, DecodeError> {
    v.ok_or_else(|| DecodeError::invalid(what, format!("missing field {field}")))
}
