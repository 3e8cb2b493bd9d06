//! SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO), ESORT `RETURN (...)`
//! (RFC 5267) and THREAD (RFC 5256).

use super::cursor::Parser;
use super::search::{return_options, search_keys};
use crate::types::{
    Command, ParseError, SearchCommand, SearchKey, SortCriterion, SortKey, ThreadAlgorithm,
};

/// `charset 1*(SP search-key)` after the SP that follows the criteria/algorithm.
fn charset_and_keys(p: &mut Parser, cmd: &str) -> Result<(String, SearchKey), ParseError> {
    let cs = p.astring(&format!("{cmd} charset"))?;
    let charset = String::from_utf8(cs).map_err(|_| p.err("Invalid charset name"))?;
    if !p.eat(b' ') {
        return Err(p.err(format!("Missing {cmd} search criteria")));
    }
    Ok((charset, search_keys(p)?))
}

/// `SORT [SP "RETURN" SP "(" [opts] ")"] SP "(" sort-criteria ")" SP charset 1*(SP search-key)`.
pub(crate) fn sort(p: &mut Parser, uid: bool) -> Result<Command, ParseError> {
    p.sp_after("SORT")?;
    let return_opts = return_options(p, "SORT", false)?;
    if return_opts.is_some() {
        p.sp_after("SORT return options")?;
    }
    let mut criteria: Vec<SortCriterion> = Vec::new();
    let mut reverse = false;
    let items = p.paren_list("sort criteria", false, |p| {
        let name = p.keyword("sort key")?;
        Ok(name)
    })?;
    for name in items {
        let key = match name.as_str() {
            "REVERSE" => {
                if reverse {
                    return Err(p.err("REVERSE must be followed by a sort key"));
                }
                reverse = true;
                continue;
            }
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => return Err(p.err(format!("Unknown sort key {name}"))),
        };
        criteria.push(SortCriterion { reverse, key });
        reverse = false;
    }
    if reverse {
        return Err(p.err("REVERSE must be followed by a sort key"));
    }
    p.sp_after("sort criteria")?;
    let (charset, key) = charset_and_keys(p, "SORT")?;
    Ok(Command::Sort {
        uid,
        criteria,
        search: SearchCommand {
            charset: Some(charset),
            return_opts,
            key,
        },
    })
}

/// `THREAD SP algorithm SP charset 1*(SP search-key)`.
pub(crate) fn thread(p: &mut Parser, uid: bool) -> Result<Command, ParseError> {
    p.sp_after("THREAD")?;
    let name = p.keyword("thread algorithm")?;
    let algorithm = match name.as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        "REFS" => ThreadAlgorithm::Refs,
        _ => return Err(p.err(format!("Unknown thread algorithm {name}"))),
    };
    p.sp_after("thread algorithm")?;
    let (charset, key) = charset_and_keys(p, "THREAD")?;
    Ok(Command::Thread {
        uid,
        algorithm,
        search: SearchCommand {
            charset: Some(charset),
            return_opts: None,
            key,
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::types::{Command, SearchKey, SearchReturnOpt, SortKey, ThreadAlgorithm};

    fn parse(line: &str) -> Result<Command, String> {
        let mut buf = crate::framer::CommandBuffer::new();
        match buf.push_line(line.as_bytes()) {
            Ok(None) => {}
            other => return Err(format!("framing: {other:?}")),
        }
        crate::framer::parse_request(buf.into_parts(), 20)
            .map(|r| r.command)
            .map_err(|e| e.text)
    }

    #[test]
    fn sort_commands() {
        let c = parse("a SORT (REVERSE DATE subject) UTF-8 ALL").expect("sort");
        let Command::Sort {
            uid,
            criteria,
            search,
        } = c
        else {
            panic!("not a sort")
        };
        assert!(!uid);
        assert_eq!(criteria.len(), 2);
        assert!(criteria[0].reverse && criteria[0].key == SortKey::Date);
        assert!(!criteria[1].reverse && criteria[1].key == SortKey::Subject);
        assert_eq!(search.charset.as_deref(), Some("UTF-8"));
        assert_eq!(search.key, SearchKey::All);
        let c = parse("a UID SORT RETURN (MIN COUNT) (DISPLAYFROM) US-ASCII FROM x SEEN")
            .expect("esort");
        let Command::Sort { uid, search, .. } = c else {
            panic!("not a sort")
        };
        assert!(uid);
        assert_eq!(
            search.return_opts,
            Some(vec![SearchReturnOpt::Min, SearchReturnOpt::Count])
        );
        assert!(matches!(search.key, SearchKey::And(ref k) if k.len() == 2));
        for bad in [
            "a SORT (DATE) UTF-8",
            "a SORT () UTF-8 ALL",
            "a SORT (REVERSE) UTF-8 ALL",
            "a SORT (BOGUS) UTF-8 ALL",
            "a SORT DATE UTF-8 ALL",
            "a SORT (DATE)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thread_commands() {
        let c = parse("a UID THREAD REFERENCES UTF-8 ALL").expect("thread");
        assert!(matches!(
            c,
            Command::Thread {
                uid: true,
                algorithm: ThreadAlgorithm::References,
                ..
            }
        ));
        let c = parse("a THREAD orderedsubject UTF-8 SUBJECT hi").expect("thread");
        assert!(matches!(
            c,
            Command::Thread {
                algorithm: ThreadAlgorithm::OrderedSubject,
                ..
            }
        ));
        assert!(matches!(
            parse("a THREAD REFS UTF-8 ALL"),
            Ok(Command::Thread {
                algorithm: ThreadAlgorithm::Refs,
                ..
            })
        ));
        assert!(parse("a THREAD BOGUS UTF-8 ALL").is_err());
        assert!(parse("a THREAD REFERENCES UTF-8").is_err());
    }
}
