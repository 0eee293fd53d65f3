//! Glob-style pattern matching with Redis's `stringmatchlen` semantics
//! (KEYS, SCAN/SSCAN/HSCAN/ZSCAN MATCH, PSUBSCRIBE, ...).
//!
//! Supported syntax:
//! - `*` any run of bytes (possibly empty), `?` exactly one byte;
//! - `[abc]` one of the listed bytes, `[^abc]` none of them, `[a-z]` a range
//!   (bounds in either order), `\x` inside a class is a literal `x`; an
//!   unterminated class extends to the end of the pattern;
//! - `\x` outside a class matches `x` literally (a trailing `\` is literal).
//!
//! Quirks kept on purpose, because Redis 7.0 has them:
//! - range bounds compare as C `char`, i.e. signed: bytes >= 0x80 sort
//!   before ASCII;
//! - `nocase` folds ASCII only, and an escaped byte inside a class is
//!   compared case-sensitively;
//! - recursion (one level per `*`) stops at a depth of 1000, where the
//!   pattern simply does not match (Redis's protection against abusive
//!   patterns; it also bounds our stack use);
//! - [`stringmatchlen`] says `*` does not match the empty string (the
//!   matching loop runs only while both sides are non-empty). KEYS and the
//!   SCAN family special-case the pattern `*` as "everything", so
//!   [`glob_match`] does too; use [`stringmatchlen`] where Redis does not
//!   (pub/sub patterns).

/// Deepest `*` nesting tried before giving up (Redis: 1000).
const MAX_NESTING: u32 = 1000;

/// True when `s` matches `pattern`, as KEYS / SCAN MATCH decide it: the
/// pattern `*` matches everything (the empty string too); anything else
/// follows [`stringmatchlen`].
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    pattern == b"*" || stringmatchlen(pattern, s, nocase)
}

/// Redis's `stringmatchlen` exactly (see the module docs).
pub fn stringmatchlen(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    matchlen(pattern, s, nocase, &mut skip_longer, 0)
}

#[inline]
fn fold(b: u8, nocase: bool) -> u8 {
    if nocase {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// The recursive matcher. `skip_longer` is Redis's `skipLongerMatches`:
/// once the rest of the pattern after a `*` failed at every position of the
/// remaining string, no earlier `*` can help either, which keeps matching
/// polynomial.
fn matchlen(p: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    // The C code reads its NUL-terminated pattern one past the end.
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    let (mut pi, mut si) = (0usize, 0usize);
    while pi < p.len() && si < s.len() {
        match p[pi] {
            b'*' => {
                while pi < p.len() && at(pi + 1) == b'*' {
                    pi += 1;
                }
                if p.len() - pi == 1 {
                    return true;
                }
                while si < s.len() {
                    if matchlen(&p[pi + 1..], &s[si..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                let c = s[si];
                pi += 1;
                let not = at(pi) == b'^';
                if not {
                    pi += 1;
                }
                let mut matched = false;
                loop {
                    let left = p.len().saturating_sub(pi);
                    if at(pi) == b'\\' && left >= 2 {
                        pi += 1;
                        if p[pi] == c {
                            matched = true;
                        }
                    } else if at(pi) == b']' {
                        break;
                    } else if left == 0 {
                        // Unterminated class: step back so the common
                        // advance below lands on the end.
                        pi -= 1;
                        break;
                    } else if left >= 3 && p[pi + 1] == b'-' {
                        // C compares (signed) chars.
                        let mut lo = fold(p[pi], nocase) as i8;
                        let mut hi = fold(p[pi + 2], nocase) as i8;
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let cc = fold(c, nocase) as i8;
                        pi += 2;
                        if cc >= lo && cc <= hi {
                            matched = true;
                        }
                    } else if fold(p[pi], nocase) == fold(c, nocase) {
                        matched = true;
                    }
                    pi += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            b => {
                let mut b = b;
                if b == b'\\' && p.len() - pi >= 2 {
                    pi += 1;
                    b = p[pi];
                }
                if fold(b, nocase) != fold(s[si], nocase) {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
        if si == s.len() {
            while at(pi) == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi >= p.len() && si == s.len()
}

#[cfg(test)]
mod tests {
    use super::{glob_match, stringmatchlen};

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("hello", "hello"));
        assert!(!m("hello", "hell"));
        assert!(!m("hell", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(!m("h*llo", "heeeellx"));
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
        assert!(m("**", "x"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("?", ""));
    }

    #[test]
    fn star_vs_empty_string_like_redis() {
        // Only the literal pattern `*` is special-cased (as SCAN does).
        assert!(!m("**", ""));
        assert!(!m("?*", ""));
        assert!(!stringmatchlen(b"*", b"", false));
        assert!(glob_match(b"*", b"", false));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed range");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(!m("[]", "a"));
        assert!(m("[^]", "a"));
        // Unterminated class runs to the end of the pattern.
        assert!(m("a[b", "ab"));
        assert!(m("a[bc", "ac"));
        assert!(!m("a[b", "ax"));
        // `[a-]` is a range from 'a' to ']'.
        assert!(m("[a-]", "]"));
        assert!(m("[a-]", "a"));
        assert!(!m("[a-]", "b"));
        // High bytes sort before ASCII (signed chars).
        assert!(glob_match(b"[\xff-a]", b"\x00", false));
        assert!(glob_match(b"[\xff-a]", b"\xff", false));
        assert!(!glob_match(b"[\xff-a]", b"\xfe", false));
        assert!(!glob_match(b"[\xff-a]", b"b", false));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?", "a?"));
        assert!(!m("a\\?", "ab"));
        assert!(m("\\", "\\"), "trailing backslash is literal");
        assert!(m("a\\", "a\\"));
    }

    #[test]
    fn nocase() {
        assert!(glob_match(b"HeLLo", b"hello", true));
        assert!(!glob_match(b"HeLLo", b"hello", false));
        assert!(glob_match(b"h[A-C]llo", b"hbllo", true));
        assert!(!glob_match(b"h[A-C]llo", b"hbllo", false));
        assert!(glob_match(b"h[E]llo", b"hello", true));
        // Escaped bytes in a class compare exactly, as in Redis.
        assert!(!glob_match(b"h[\\E]llo", b"hello", true));
    }

    #[test]
    fn pathological_patterns_are_bounded() {
        let s = vec![b'a'; 5000];
        let mut p = b"*a".repeat(2000);
        p.push(b'b');
        assert!(!glob_match(&p, &s, false));
        // Within the nesting limit a deep pattern still matches...
        let s = vec![b'a'; 1100];
        assert!(glob_match(&b"*a".repeat(900), &s, false));
        // ...beyond it, it does not (Redis 7.0.15 behaves the same).
        assert!(!glob_match(&b"*a".repeat(1100), &s, false));
    }
}
