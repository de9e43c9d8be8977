//! IAM string patterns: `*` and `?` globs (not regexes) and unresolved policy variables.

/// One unit of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: exactly one character.
    AnyOne,
    /// `*`, or a policy variable we cannot resolve (see [`Pattern`]).
    AnyMany,
}

/// A policy string ready to be matched against a request value.
///
/// An unresolved policy variable (`${aws:username}`, `${aws:PrincipalTag/team, 'none'}`) stands for
/// some string we do not know, so it is matched as `*`: when even that fails no value can make it
/// match (`Some(false)`); when it succeeds the answer depends on the value (`None`). The escapes
/// `${*}`, `${?}` and `${$}` are the literal characters `*`, `?` and `$`.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    tokens: Vec<Token>,
    has_variable: bool,
}

impl Pattern {
    /// `wildcards`: whether `*` and `?` are wildcards (`StringLike`, `Resource`) or literal
    /// characters (`StringEquals`). `variables`: whether `${…}` is a policy variable, which IAM
    /// expands only under policy version `2012-10-17`.
    pub(super) fn new(text: &str, wildcards: bool, variables: bool) -> Self {
        let mut tokens = Vec::with_capacity(text.len());
        let mut has_variable = false;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                tokens.push(match &rest[2..end] {
                    "*" => Token::Char('*'),
                    "?" => Token::Char('?'),
                    "$" => Token::Char('$'),
                    _ => {
                        has_variable = true;
                        Token::AnyMany
                    }
                });
                rest = &rest[end + 1..];
                continue;
            }
            tokens.push(match c {
                '*' if wildcards => Token::AnyMany,
                '?' if wildcards => Token::AnyOne,
                c => Token::Char(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        Pattern {
            tokens,
            has_variable,
        }
    }

    /// Whole-string match; `*` matches any run of characters, `:` and `/` included.
    pub(super) fn matches(&self, value: &str) -> Option<bool> {
        self.answer(glob(&self.tokens, value))
    }

    /// The characters every matching value starts with (up to the first wildcard or policy variable), so an
    /// index can skip the pattern for a value that does not start with them.
    pub(super) fn literal_prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|token| match token {
                Token::Char(c) => Some(*c),
                Token::AnyOne | Token::AnyMany => None,
            })
            .collect()
    }

    /// `ArnEquals`/`ArnLike`: each of the six `:`-separated ARN components is matched on its own
    /// (the sixth, the resource, keeps any further colons). A pattern or value that is not six
    /// components is matched as a whole string. With a variable the whole-string match is used:
    /// it is a superset of the component-wise one, so its `false` is still certain.
    pub(super) fn matches_arn(&self, value: &str) -> Option<bool> {
        let values: Vec<&str> = value.splitn(6, ':').collect();
        let parts = self.arn_parts();
        if self.has_variable || parts.len() != 6 || values.len() != 6 {
            return self.matches(value);
        }
        let all = parts
            .iter()
            .zip(&values)
            .all(|(part, value)| glob(part, value));
        Some(all)
    }

    fn arn_parts(&self) -> Vec<&[Token]> {
        let mut parts = Vec::with_capacity(6);
        let mut start = 0;
        for (i, token) in self.tokens.iter().enumerate() {
            if *token == Token::Char(':') && parts.len() < 5 {
                parts.push(&self.tokens[start..i]);
                start = i + 1;
            }
        }
        parts.push(&self.tokens[start..]);
        parts
    }

    fn answer(&self, matched: bool) -> Option<bool> {
        match (matched, self.has_variable) {
            (false, _) => Some(false),
            (true, false) => Some(true),
            (true, true) => None,
        }
    }
}

/// Whether some value matches both IAM patterns (`*`, `?` and unresolved policy variables as wildcards). Two ARN
/// patterns (six `:`-separated components each) overlap when each pair of components does, as a real ARN has no
/// `:` before its resource; any other pattern is taken as a whole string.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (Pattern::new(a, true, true), Pattern::new(b, true, true));
    let (a_parts, b_parts) = (a.arn_parts(), b.arn_parts());
    if a_parts.len() == 6 && b_parts.len() == 6 && !a.has_variable && !b.has_variable {
        return a_parts
            .iter()
            .zip(&b_parts)
            .all(|(x, y)| tokens_overlap(x, y));
    }
    tokens_overlap(&a.tokens, &b.tokens)
}

/// A walk over pairs of positions, one in each pattern, where a `*` may match nothing or one more character.
fn tokens_overlap(a: &[Token], b: &[Token]) -> bool {
    let mut seen = vec![false; (a.len() + 1) * (b.len() + 1)];
    let mut todo = vec![(0, 0)];
    let step = |t: &Token, k: usize| if *t == Token::AnyMany { k } else { k + 1 };
    while let Some((i, j)) = todo.pop() {
        if std::mem::replace(&mut seen[i * (b.len() + 1) + j], true) {
            continue;
        }
        let (x, y) = (a.get(i), b.get(j));
        match (x, y) {
            (None, None) => return true,
            (Some(Token::AnyMany), _) => todo.push((i + 1, j)),
            _ => {}
        }
        if y == Some(&Token::AnyMany) {
            todo.push((i, j + 1));
        }
        if let (Some(x), Some(y)) = (x, y) {
            let clash = matches!((x, y), (Token::Char(p), Token::Char(q)) if p != q);
            let both_stars = *x == Token::AnyMany && *y == Token::AnyMany;
            if !clash && !both_stars {
                todo.push((step(x, i), step(y, j)));
            }
        }
    }
    false
}

/// Classic linear-space glob match with backtracking to the last `*`, over the value's characters (positions
/// are byte offsets, so nothing is allocated).
fn glob(tokens: &[Token], value: &str) -> bool {
    let next_char = |at: usize| value[at..].chars().next();
    let (mut t, mut v) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(c) = next_char(v) {
        match tokens.get(t) {
            Some(Token::AnyMany) => {
                last_star = Some((t, v));
                t += 1;
            }
            Some(Token::AnyOne) => (t, v) = (t + 1, v + c.len_utf8()),
            Some(Token::Char(p)) if *p == c => (t, v) = (t + 1, v + c.len_utf8()),
            _ => match last_star {
                Some((star, from)) => {
                    let from = from + next_char(from).map_or(1, char::len_utf8);
                    last_star = Some((star, from));
                    (t, v) = (star + 1, from);
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == Token::AnyMany)
}

#[cfg(test)]
mod tests {
    use super::{Pattern, patterns_overlap};

    #[test]
    #[rustfmt::skip]
    fn two_patterns_overlap_when_some_string_matches_both() {
        let cases = [
            ("*", "arn:aws:kms:us-east-1:1:key/*", true),
            ("arn:aws:kms:*:1:key/*", "arn:*:kms:us-east-1:1:key/*", true),
            ("arn:aws:kms:eu-west-1:1:key/*", "arn:*:kms:us-east-1:*:key/*", false),
            ("arn:aws:kms:us-*", "arn:*:kms:us-east-1:*:key/*", true),
            ("arn:aws:kms:us-east-1:1:*", "arn:*:kms:us-east-1:*:key/*", true),
            ("arn:aws:secretsmanager:us-east-1:1:secret:db:*", "arn:aws:secretsmanager:us-east-1:1:secret:db", false),
            ("secret:db-??????", "secret:db-abcdef", true),
            ("secret:db-??????", "secret:db-abcdef-??????", false),
            ("repository/docker-hub*", "repository/docker-hub/*", true),
            ("repository/docker-hubx/*", "repository/docker-hub/*", false),
            ("a?c", "*b*", true),
            ("abc", "abd", false),
            ("${aws:username}", "alice", true),
            ("", "*", true),
            ("", "?", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(patterns_overlap(a, b), expected, "{a} / {b}");
            assert_eq!(patterns_overlap(b, a), expected, "{b} / {a}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn globs_backtrack_and_variables_stay_undecided() {
        let cases = [
            ("a*b*c", "axxbyyc", Some(true)),
            ("a*b*c", "axxbyy", Some(false)),
            ("*", "", Some(true)),
            ("?", "", Some(false)),
            ("?", "é", Some(true)),
            ("*/*", "a:b/c", Some(true)),
            ("a.c", "abc", Some(false)),
            ("${aws:username}/*", "alice/key", None),
            ("${aws:username}/*", "alice", Some(false)),
            ("${aws:PrincipalTag/team, 'none'}", "x", None),
            ("${$}{x}", "${x}", Some(true)),
            ("${unclosed", "${unclosed", Some(true)),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(Pattern::new(pattern, true, true).matches(value), expected, "{pattern} ~ {value}");
        }
    }
}
