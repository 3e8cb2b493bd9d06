//! Pillarbox's IMAP grammar, sans I/O, in three layers:
//! - [`framer`]: splits the byte stream into requests (lines plus literals), and
//!   tells the connection when a literal follows so it can check limits first;
//! - [`parse`]: turns one framed request into a typed [`types::Request`], or a
//!   [`types::ParseError`] carrying the tag (when readable) and a clear text;
//! - [`respond`]: encoders for the data the server writes back.
//!
//! Plus [`mutf7`], modified UTF-7 for IMAP4rev1 mailbox names (RFC 3501 5.1.3).

pub mod framer;
pub mod mutf7;
pub mod parse;
pub mod respond;
pub mod types;
