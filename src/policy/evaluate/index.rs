//! Patterns indexed by their literal prefix, so that a value is tested only against the patterns that could
//! match it: the ones whose literal prefix (what comes before the first wildcard or policy variable) the value
//! starts with. Every other pattern is certainly `Some(false)`.
//!
//! The distinct prefixes are kept sorted, each with a link to the longest other prefix that is a prefix of it.
//! The prefixes of a value are then found with one binary search and a walk up those links: the largest prefix
//! `p` not above the value shares with it every prefix `q` of the value (anything sorted between `q` and a value
//! that starts with `q` starts with `q` too), so the value's prefixes are `p`'s ancestors no longer than the
//! common part of `p` and the value. Building costs a sort; a look-up a binary search and the matching prefixes.

use super::pattern::Pattern;

/// A set of patterns, each with a payload (e.g. the statement it belongs to), indexed by literal prefix.
#[derive(Debug, Clone)]
pub(super) struct PrefixIndex<T> {
    /// The distinct literal prefixes, sorted.
    prefixes: Vec<String>,
    /// For each prefix, the index of the longest other prefix that is a prefix of it.
    parents: Vec<Option<usize>>,
    /// For each prefix, where its entries start in `entries` (the last is `entries.len()`).
    starts: Vec<usize>,
    /// The patterns with their payloads, grouped by prefix in the order of `prefixes`.
    entries: Vec<(Pattern, T)>,
}

impl<T> PrefixIndex<T> {
    /// Index the patterns.
    pub(super) fn new(patterns: impl IntoIterator<Item = (Pattern, T)>) -> Self {
        let mut keyed: Vec<(String, Pattern, T)> = patterns
            .into_iter()
            .map(|(pattern, payload)| (pattern.literal_prefix(), pattern, payload))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let (mut prefixes, mut starts, mut entries) = (Vec::new(), Vec::new(), Vec::new());
        for (prefix, pattern, payload) in keyed {
            if prefixes.last() != Some(&prefix) {
                prefixes.push(prefix);
                starts.push(entries.len());
            }
            entries.push((pattern, payload));
        }
        starts.push(entries.len());
        let parents = parents(&prefixes);
        PrefixIndex {
            prefixes,
            parents,
            starts,
            entries,
        }
    }

    /// The patterns (with payloads) whose literal prefix `value` starts with: the only ones that can match it.
    pub(super) fn candidates<'s>(
        &'s self,
        value: &'s str,
    ) -> impl Iterator<Item = &'s (Pattern, T)> + 's {
        let below = self
            .prefixes
            .partition_point(|prefix| prefix.as_str() <= value);
        let mut first = below.checked_sub(1);
        if let Some(nearest) = first {
            let common = common_prefix_len(&self.prefixes[nearest], value);
            while let Some(i) = first.filter(|&i| self.prefixes[i].len() > common) {
                first = self.parents[i];
            }
        }
        std::iter::successors(first, |&i| self.parents[i])
            .flat_map(|i| &self.entries[self.starts[i]..self.starts[i + 1]])
    }
}

/// For each of the sorted, distinct `prefixes`, the longest other one that is a prefix of it, keeping a stack of
/// the previous prefix and those of its prefixes that are in the list.
fn parents(prefixes: &[String]) -> Vec<Option<usize>> {
    let mut chain: Vec<usize> = Vec::new();
    prefixes
        .iter()
        .enumerate()
        .map(|(i, prefix)| {
            while chain
                .last()
                .is_some_and(|&p| !prefix.starts_with(prefixes[p].as_str()))
            {
                chain.pop();
            }
            let parent = chain.last().copied();
            chain.push(i);
            parent
        })
        .collect()
}

/// How many bytes `a` and `b` share at the start, cut back to a character boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    let mut len = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(len) {
        len -= 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::{Pattern, PrefixIndex};

    #[test]
    fn candidates_are_exactly_the_patterns_whose_prefix_the_value_starts_with() {
        let texts = [
            "*", "a*", "ab*", "ab?", "abc", "abd*", "b*", "a", "éa*", "é*",
        ];
        let index = PrefixIndex::new(texts.iter().map(|t| (Pattern::new(t, true, false), *t)));
        let cases: [(&str, &[&str]); 7] = [
            ("abx", &["*", "a", "a*", "ab*", "ab?"]),
            ("abdz", &["*", "a", "a*", "ab*", "ab?", "abd*"]),
            ("abc", &["*", "a", "a*", "ab*", "ab?", "abc"]),
            ("a", &["*", "a*", "a"]),
            ("", &["*"]),
            ("éab", &["*", "é*", "éa*"]),
            ("c", &["*"]),
        ];
        for (value, expected) in cases {
            let mut found: Vec<&str> = index.candidates(value).map(|(_, t)| *t).collect();
            found.sort_unstable();
            let mut expected = expected.to_vec();
            expected.sort_unstable();
            assert_eq!(found, expected, "{value}");
        }
        let empty = PrefixIndex::<()>::new(Vec::new());
        assert!(empty.candidates("a").next().is_none());
    }
}
