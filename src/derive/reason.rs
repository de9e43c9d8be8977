//! Why a permission is needed ([`Reason`]: task definition, container, field path), kept small because a role
//! keeps one per permission and revision for as long as it is managed (10,000 revisions make hundreds of thousands
//! of them). The strings are shared: a revision's name by every reason of its derivation, and container names and
//! field paths (few distinct values in a whole estate) through one interner for the process.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

/// Why a permission is needed: which task definition, container and field asked for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Reason {
    /// `family:revision` (or the ARN's last segment).
    pub task_definition: Arc<str>,
    /// The container name (`#index` when unnamed).
    pub container: Arc<str>,
    /// The JSON path of the field, e.g. `containerDefinitions[0].image`.
    pub field: Arc<str>,
}

impl Reason {
    /// A reason of `task_definition` (shared as given), with the container name and field path interned.
    pub fn new(task_definition: Arc<str>, container: &str, field: &str) -> Reason {
        Reason {
            task_definition,
            container: interned(container),
            field: interned(field),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} container {} {}",
            self.task_definition, self.container, self.field
        )
    }
}

/// Interned strings, and the size of the set after its last sweep of unused ones.
#[derive(Default)]
struct Interner {
    strings: HashSet<Arc<str>>,
    swept_at: usize,
}

/// Entries below this count are never swept.
const SWEEP_FLOOR: usize = 4096;

impl Interner {
    /// `text` as a shared string: the same allocation for every equal text while anything holds it. Strings
    /// nothing else holds any more are dropped whenever the set has doubled since the last sweep, so it stays
    /// bounded by what is in use.
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        if self.strings.len() >= SWEEP_FLOOR.max(2 * self.swept_at) {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.swept_at = self.strings.len();
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(shared.clone());
        shared
    }
}

/// `text` through the process's one interner.
fn interned(text: &str) -> Arc<str> {
    static INTERNER: OnceLock<Mutex<Interner>> = OnceLock::new();
    let interner = INTERNER.get_or_init(Mutex::default);
    // Every update completes before the guard drops: a poisoned lock still holds a consistent set.
    let mut interner = interner.lock().unwrap_or_else(|e| e.into_inner());
    interner.get(text)
}

/// Sort and deduplicate `reasons`, and give back spare capacity (a role keeps them for as long as it is managed).
pub(crate) fn settle(reasons: &mut Vec<Reason>) {
    reasons.sort_unstable();
    reasons.dedup();
    reasons.shrink_to_fit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_allocation() {
        let a = Reason::new(Arc::from("svc:1"), "app", "containerDefinitions[0].image");
        let b = Reason::new(Arc::from("svc:2"), "app", "containerDefinitions[0].image");
        assert!(Arc::ptr_eq(&a.container, &b.container));
        assert!(Arc::ptr_eq(&a.field, &b.field));
        assert_eq!(
            a.to_string(),
            "svc:1 container app containerDefinitions[0].image"
        );
    }

    #[test]
    fn unused_strings_are_swept_once_the_set_has_grown() {
        let mut interner = Interner::default();
        let kept = interner.get("kept");
        for i in 0..3 * SWEEP_FLOOR {
            drop(interner.get(&format!("transient-{i}")));
        }
        assert!(
            interner.strings.len() <= SWEEP_FLOOR + 1,
            "{}",
            interner.strings.len()
        );
        assert!(Arc::ptr_eq(&kept, &interner.get("kept")));
    }

    #[test]
    fn settle_sorts_and_deduplicates() {
        let r = |c: &str| Reason::new(Arc::from("svc:1"), c, "f");
        let mut reasons = vec![r("b"), r("a"), r("b")];
        settle(&mut reasons);
        assert_eq!(reasons, vec![r("a"), r("b")]);
    }
}
