//! Key layouts of the column families. Names cannot contain 0x00 (they are
//! validated), so it is a safe separator.

/// `app 0x00 second`: version index and channel keys.
pub fn pair(app: &str, second: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(app.len() + second.len() + 1);
    k.extend_from_slice(app.as_bytes());
    k.push(0);
    k.extend_from_slice(second.as_bytes());
    k
}

/// `app 0x00 channel 0x00 sequence:u64be`: history, in sequence order.
pub fn history(app: &str, channel: &str, seq: u64) -> Vec<u8> {
    let mut k = history_prefix(app, channel);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of all history keys of one channel.
pub fn history_prefix(app: &str, channel: &str) -> Vec<u8> {
    let mut k = pair(app, channel);
    k.push(0);
    k
}

/// Splits a `pair` key back into its two names.
pub fn split_pair(key: &[u8]) -> Option<(String, String)> {
    let i = key.iter().position(|&b| b == 0)?;
    let a = std::str::from_utf8(&key[..i]).ok()?;
    let b = std::str::from_utf8(&key[i + 1..]).ok()?;
    Some((a.to_string(), b.to_string()))
}
