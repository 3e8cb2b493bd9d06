//! SEARCH: RFC 9051 6.4.4 / RFC 3501 keys, CHARSET, ESEARCH `RETURN (...)`
//! (RFC 4731, RFC 5182 SAVE), CONDSTORE MODSEQ (RFC 7162), WITHIN (RFC 5032).

use super::cursor::{Parser, Peek};
use crate::types::{Command, ParseError, SearchCommand, SearchKey, SearchReturnOpt};

/// `SEARCH [SP "RETURN" SP "(" [opts] ")"] [SP "CHARSET" SP astring] 1*(SP search-key)`.
pub(crate) fn search(p: &mut Parser, uid: bool) -> Result<Command, ParseError> {
    if !p.eat(b' ') {
        return Err(p.err("Missing search criteria"));
    }
    let mut charset = None;
    let return_opts = return_options(p, "SEARCH", true)?;
    if return_opts.is_some() && !p.eat(b' ') {
        return Err(p.err("Missing search criteria"));
    }
    if p.peek_bytes(b"CHARSET ") {
        p.keyword("CHARSET")?;
        p.sp_after("CHARSET")?;
        let cs = p.astring("charset")?;
        charset = Some(String::from_utf8(cs).map_err(|_| p.err("Invalid charset name"))?);
        if !p.eat(b' ') {
            return Err(p.err("Missing search criteria"));
        }
    }
    let key = search_keys(p)?;
    Ok(Command::Search {
        uid,
        search: SearchCommand {
            charset,
            return_opts,
            key,
        },
    })
}

/// The optional `RETURN (...)` of SEARCH (RFC 4731, SAVE from RFC 5182) or
/// SORT (RFC 5267, no SAVE); `RETURN ()` gives `Some(vec![])`.
pub(super) fn return_options(
    p: &mut Parser,
    cmd: &str,
    allow_save: bool,
) -> Result<Option<Vec<SearchReturnOpt>>, ParseError> {
    if !p.peek_bytes(b"RETURN ") {
        return Ok(None);
    }
    p.keyword("RETURN")?;
    p.sp_after("RETURN")?;
    let opts = p.paren_list(&format!("{cmd} return options"), true, |p| {
        let name = p.keyword(&format!("{cmd} return option"))?;
        Ok(match name.as_str() {
            "MIN" => SearchReturnOpt::Min,
            "MAX" => SearchReturnOpt::Max,
            "ALL" => SearchReturnOpt::All,
            "COUNT" => SearchReturnOpt::Count,
            "SAVE" if allow_save => SearchReturnOpt::Save,
            _ => return Err(p.err(format!("Unknown {cmd} return option {name}"))),
        })
    })?;
    Ok(Some(opts))
}

/// `search-key *(SP search-key)`: one key, or the AND of several.
pub(super) fn search_keys(p: &mut Parser) -> Result<SearchKey, ParseError> {
    let mut keys = vec![search_key(p)?];
    while p.eat(b' ') {
        keys.push(search_key(p)?);
    }
    Ok(if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    })
}

fn sp_arg(p: &mut Parser, key: &str) -> Result<(), ParseError> {
    if p.eat(b' ') {
        Ok(())
    } else {
        Err(p.err(format!("Missing argument for SEARCH {key}")))
    }
}

fn string_arg(p: &mut Parser, key: &str) -> Result<Vec<u8>, ParseError> {
    sp_arg(p, key)?;
    p.astring(&format!("SEARCH {key} argument"))
}

fn keyword_arg(p: &mut Parser, key: &str) -> Result<String, ParseError> {
    sp_arg(p, key)?;
    p.atom(&format!("SEARCH {key} keyword"))
}

/// One search-key (recursive for NOT, OR and parenthesised lists; depth-bounded).
pub(crate) fn search_key(p: &mut Parser) -> Result<SearchKey, ParseError> {
    match p.peek() {
        Peek::End => return Err(p.err("Missing search key")),
        Peek::Literal => return Err(p.err("Unexpected literal, expected search key")),
        Peek::Byte(b'(') => {
            p.bump();
            p.enter()?;
            if p.peek() == Peek::Byte(b')') {
                return Err(p.err("Empty search key list"));
            }
            let mut keys = vec![search_key(p)?];
            loop {
                if p.eat(b')') {
                    break;
                }
                if !p.eat(b' ') {
                    return Err(if p.at_end() {
                        p.err("Missing ) in search key list")
                    } else {
                        p.err("Expected SP or ) in search key list")
                    });
                }
                keys.push(search_key(p)?);
            }
            p.leave();
            return Ok(SearchKey::And(keys));
        }
        Peek::Byte(b) if b.is_ascii_digit() || b == b'*' || b == b'$' => {
            return Ok(SearchKey::SequenceSet(p.sequence_set()?));
        }
        Peek::Byte(_) => {}
    }
    let name = p.keyword("search key")?;
    match name.as_str() {
        "NOT" => {
            sp_arg(p, "NOT")?;
            p.enter()?;
            let k = search_key(p)?;
            p.leave();
            Ok(SearchKey::Not(Box::new(k)))
        }
        "OR" => {
            sp_arg(p, "OR")?;
            p.enter()?;
            let a = search_key(p)?;
            sp_arg(p, "OR")?;
            let b = search_key(p)?;
            p.leave();
            Ok(SearchKey::Or(Box::new(a), Box::new(b)))
        }
        _ => simple_key(p, &name),
    }
}

/// The non-recursive keys, kept out of `search_key` so that its stack frame
/// (which recursion multiplies) stays small.
#[inline(never)]
fn simple_key(p: &mut Parser, name: &str) -> Result<SearchKey, ParseError> {
    let key = match name {
        "ALL" => SearchKey::All,
        "ANSWERED" => SearchKey::Answered,
        "DELETED" => SearchKey::Deleted,
        "DRAFT" => SearchKey::Draft,
        "FLAGGED" => SearchKey::Flagged,
        "SEEN" => SearchKey::Seen,
        "UNANSWERED" => SearchKey::Unanswered,
        "UNDELETED" => SearchKey::Undeleted,
        "UNDRAFT" => SearchKey::Undraft,
        "UNFLAGGED" => SearchKey::Unflagged,
        "UNSEEN" => SearchKey::Unseen,
        "NEW" => SearchKey::New,
        "OLD" => SearchKey::Old,
        "RECENT" => SearchKey::Recent,
        "KEYWORD" => SearchKey::Keyword(keyword_arg(p, name)?),
        "UNKEYWORD" => SearchKey::Unkeyword(keyword_arg(p, name)?),
        "BCC" => SearchKey::Bcc(string_arg(p, name)?),
        "CC" => SearchKey::Cc(string_arg(p, name)?),
        "FROM" => SearchKey::From(string_arg(p, name)?),
        "TO" => SearchKey::To(string_arg(p, name)?),
        "SUBJECT" => SearchKey::Subject(string_arg(p, name)?),
        "BODY" => SearchKey::Body(string_arg(p, name)?),
        "TEXT" => SearchKey::Text(string_arg(p, name)?),
        "HEADER" => {
            let field = string_arg(p, name)?;
            let field = String::from_utf8(field).map_err(|_| p.err("Invalid header field name"))?;
            if field.is_empty() {
                return Err(p.err("Empty header field name in SEARCH HEADER"));
            }
            SearchKey::Header(field, string_arg(p, name)?)
        }
        "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
            sp_arg(p, name)?;
            let d = p.date(&format!("SEARCH {name}"))?;
            match name {
                "BEFORE" => SearchKey::Before(d),
                "ON" => SearchKey::On(d),
                "SINCE" => SearchKey::Since(d),
                "SENTBEFORE" => SearchKey::SentBefore(d),
                "SENTON" => SearchKey::SentOn(d),
                _ => SearchKey::SentSince(d),
            }
        }
        "LARGER" => {
            sp_arg(p, name)?;
            SearchKey::Larger(p.number64("SEARCH LARGER")?)
        }
        "SMALLER" => {
            sp_arg(p, name)?;
            SearchKey::Smaller(p.number64("SEARCH SMALLER")?)
        }
        "OLDER" | "YOUNGER" => {
            sp_arg(p, name)?;
            let n = p.number64(&format!("SEARCH {name}"))?;
            if n == 0 {
                return Err(p.err(format!("SEARCH {name} interval must not be zero")));
            }
            if name == "OLDER" {
                SearchKey::Older(n)
            } else {
                SearchKey::Younger(n)
            }
        }
        "UID" => {
            sp_arg(p, name)?;
            SearchKey::Uid(p.sequence_set()?)
        }
        "MODSEQ" => {
            sp_arg(p, name)?;
            if p.peek() == Peek::Byte(b'"') {
                let entry = p.quoted()?;
                if !entry.starts_with(b"/flags/") {
                    return Err(p.err("Invalid MODSEQ entry name"));
                }
                p.sp_after("MODSEQ entry name")?;
                let ty = p.keyword("MODSEQ entry type")?;
                if !matches!(ty.as_str(), "PRIV" | "SHARED" | "ALL") {
                    return Err(p.err(format!("Invalid MODSEQ entry type {ty}")));
                }
                p.sp_after("MODSEQ entry type")?;
            }
            SearchKey::ModSeq(p.number64("SEARCH MODSEQ")?)
        }
        _ => return Err(p.err(format!("Unknown search key {name}"))),
    };
    Ok(key)
}
