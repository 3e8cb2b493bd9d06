//! Modified UTF-7 (RFC 3501 5.1.3).

/// Encodes a UTF-8 mailbox name as modified UTF-7.
pub fn encode(name: &str) -> String {
    unimplemented!()
}

/// Decodes modified UTF-7; None if the input is not valid modified UTF-7.
pub fn decode(name: &[u8]) -> Option<String> {
    unimplemented!()
}
