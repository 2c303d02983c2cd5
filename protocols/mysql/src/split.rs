//! Splits a multi-statement COM_QUERY text (CLIENT_MULTI_STATEMENTS) into statements, the way
//! the server's lexer sees `;`: not inside '…', "…" or `…` (with `\` escapes in the first two and
//! doubled quotes in all three), nor inside `-- ` (dash dash whitespace), `#` or `/* … */`
//! comments. Runs on the decoded UTF-8 text, so multi-byte characters (a GBK trail byte can be
//! 0x5C `\`) cannot confuse it.

/// Byte ranges of the statements in `sql`, trimmed, empty ones (only whitespace, comments or
/// `;`) left out. At most `max` ranges are returned; `None` when there are more.
pub fn split(sql: &str, max: usize) -> Option<Vec<std::ops::Range<usize>>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0usize;
    // Whether the current statement has a byte that is not whitespace or comment.
    let mut content: Option<usize> = None;
    let mut last_content_end = 0usize;
    let mut i = 0usize;
    let at = |i: usize| b.get(i).copied();
    while let Some(c) = at(i) {
        match c {
            b'\'' | b'"' | b'`' => {
                content.get_or_insert(i);
                i += 1;
                while let Some(d) = at(i) {
                    i += 1;
                    if d == b'\\' && c != b'`' {
                        i += 1;
                    } else if d == c {
                        if at(i) == Some(c) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
                last_content_end = i.min(b.len());
            }
            b'-' if at(i + 1) == Some(b'-')
                && at(i + 2).is_none_or(|d| d.is_ascii_whitespace()) =>
            {
                i = skip_line(b, i);
            }
            b'#' => i = skip_line(b, i),
            b'/' if at(i + 1) == Some(b'*') => {
                // `/*! … */` and `/*+ … */` are executable comments / hints: content.
                if matches!(at(i + 2), Some(b'!') | Some(b'+')) {
                    content.get_or_insert(i);
                }
                let end = sql
                    .get(i + 2..)
                    .and_then(|r| r.find("*/"))
                    .map(|p| i + 2 + p + 2)
                    .unwrap_or(b.len());
                if content.is_some_and(|s| s >= i) {
                    last_content_end = end;
                }
                i = end;
            }
            b';' => {
                if let Some(s) = content.take() {
                    if out.len() >= max {
                        return None;
                    }
                    out.push(s..last_content_end);
                }
                i += 1;
                start = i;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                content.get_or_insert(i);
                i += 1;
                last_content_end = i;
            }
        }
    }
    let _ = start;
    if let Some(s) = content {
        if out.len() >= max {
            return None;
        }
        out.push(s..last_content_end.max(s));
    }
    Some(out)
}

fn skip_line(b: &[u8], i: usize) -> usize {
    b.get(i..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
        .map(|p| i + p + 1)
        .unwrap_or(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Vec<&str> {
        split(s, 100).unwrap().into_iter().map(|r| &s[r]).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        assert_eq!(parts("select 1; select 2"), vec!["select 1", "select 2"]);
        assert_eq!(
            parts("insert into t values ('a;b', \"c\\\";d\", `e;f`);select 'it''s;'"),
            vec![
                "insert into t values ('a;b', \"c\\\";d\", `e;f`)",
                "select 'it''s;'"
            ]
        );
        assert_eq!(
            parts("select 1 -- a;b\n; # c;d\nselect /* ; */ 2;;"),
            vec!["select 1", "select /* ; */ 2"]
        );
        // `--` without whitespace is two minus signs, not a comment.
        assert_eq!(
            parts("select 1--1;select 2"),
            vec!["select 1--1", "select 2"]
        );
        assert_eq!(parts("  ;  /* only */ ; "), Vec::<&str>::new());
        assert_eq!(
            parts("/*!40101 SET NAMES utf8 */;select 1"),
            vec!["/*!40101 SET NAMES utf8 */", "select 1"]
        );
    }

    #[test]
    fn unterminated_quotes_and_limits() {
        assert_eq!(parts("select 'abc;"), vec!["select 'abc;"]);
        assert_eq!(split("a;b;c", 2), None);
    }
}
