//! Date: header → epoch seconds (via mail-parser's RFC 5322 date parser).

use crate::header::{self, Field};

pub(crate) fn sent_date(fields: &[Field<'_>]) -> Option<i64> {
    let value = header::first(fields, "date")?;
    let mut msg = b"Date: ".to_vec();
    msg.extend_from_slice(&header::unfold(value));
    msg.extend_from_slice(b"\r\n\r\n");
    let parsed = mail_parser::MessageParser::default().parse_headers(&msg)?;
    parsed.date().map(|d| d.to_timestamp())
}
