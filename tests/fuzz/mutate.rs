//! Input generation: a small deterministic PRNG, structure-aware mutation of JSON values (values, keys, types,
//! nesting, sizes, splices between seeds), a serialiser that can also write what `serde_json` never would
//! (duplicate keys, out-of-range numbers), byte-level mutation of text, and mutation of short strings.

use serde_json::{Map, Number, Value};

/// splitmix64: tiny, fast and the same on every platform and version, so a seed always replays the same run.
pub struct Rng(u64);

impl Rng {
    /// A generator for input `index` of `target` in the run seeded with `seed`.
    pub fn for_input(seed: u64, target: &str, index: u64) -> Rng {
        let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in target.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let mut rng = Rng(h ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03));
        rng.next();
        rng
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Strings that tend to break parsers of ARNs, images, percent-encoding and templates.
const NASTY: &[&str] = &[
    "",
    " ",
    ":",
    "::::::",
    "/",
    "//",
    "@",
    "*",
    "?",
    "%",
    "%%",
    "%G1",
    "%4",
    "%FF",
    "%C3%28",
    "%ED%A0%80",
    "%00",
    "%7B",
    "%257B",
    "+",
    "\u{0}",
    "\u{7f}",
    "é",
    "ß",
    "\u{10FFFF}",
    "\u{202e}",
    "🦀",
    "\t\n\r",
    "${AWS_REGION}",
    "${",
    "{{x}}",
    "{{",
    "<account>",
    "<",
    "arn:",
    "arn:aws",
    "arn:aws:iam::",
    "arn:::::",
    "arn:aws:iam::123456789012:role/",
    "arn:aws:iam::123456789012:role/a/b/c",
    "arn:aws:sts::123456789012:assumed-role/R/execrole",
    "arn:aws-cn:s3:::bucket/key.env",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf:password:AWSCURRENT:",
    "arn:aws:ssm:eu-west-1:123456789012:parameter/a/b",
    "arn:aws:kms:eu-west-1:123456789012:key/abc",
    "arn:aws:kms:eu-west-1:123456789012:alias/x",
    "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/x:*",
    "123456789012",
    "12345678901",
    "1234567890123",
    "eu-west-1",
    "cn-north-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b:1@sha256:00",
    "123456789012.dkr.ecr..amazonaws.com/",
    "123456789012.dkr-ecr.x.on.aws/a",
    ".amazonaws.com",
    "awslogs",
    "awsfirelens",
    "s3",
    "fluentbit",
    "config-file-type",
    "config-file-value",
    "awslogs-group",
    "awslogs-region",
    "awslogs-create-group",
    "Allow",
    "Deny",
    "2012-10-17",
    "2008-10-17",
    "StringEquals",
    "ForAllValues:StringLike",
    "aws:sourceVpce",
    "ecs-tasks.amazonaws.com",
    "EC2",
    "FARGATE",
    "enforce",
    "dry-run",
    "least-privilege",
    "managed-policy",
    "AWS API Call via CloudTrail",
    "aws.ecs",
    "aws.iam",
    "RegisterTaskDefinition",
    "PutRolePolicy",
    "app/execrole",
    "5m",
    "0s",
    "18446744073709551616s",
    "1000000000000h",
    "-1s",
    "0.0.0.0:9464",
    "[::1]:0",
    "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
    "https://",
    "{a,b}",
    "[",
    "[!",
    "**/**",
];

/// Number literals outside what `serde_json` writes.
const ODD_NUMBERS: &[&str] = &[
    "1e999",
    "-1e999",
    "-0",
    "18446744073709551616",
    "-9223372036854775809",
    "1.5e-400",
    "0.1e1",
    "123456789012345678901234567890123456789",
    "4294967296",
    "-1",
    "1e3",
    "2.5",
];

/// What a target's seeds give the mutator to splice in.
pub struct Dictionary {
    /// Object keys seen in the seeds, plus the known field names.
    pub keys: Vec<String>,
    /// Short string values seen in the seeds, plus [`NASTY`].
    pub strings: Vec<String>,
    /// Every subtree of the seeds (bounded).
    pub subtrees: Vec<Value>,
}

impl Dictionary {
    /// Collect keys, strings and subtrees from the seed values.
    pub fn of(seeds: &[Value]) -> Dictionary {
        let mut dictionary = Dictionary {
            keys: Vec::new(),
            strings: NASTY.iter().map(|s| s.to_string()).collect(),
            subtrees: Vec::new(),
        };
        for seed in seeds {
            dictionary.collect(seed);
        }
        dictionary.keys.sort();
        dictionary.keys.dedup();
        dictionary.strings.sort();
        dictionary.strings.dedup();
        dictionary.subtrees.truncate(4000);
        if dictionary.keys.is_empty() {
            dictionary.keys.push("key".into());
        }
        dictionary
    }

    fn collect(&mut self, value: &Value) {
        self.subtrees.push(value.clone());
        match value {
            Value::String(s) if s.len() < 300 => self.strings.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| self.collect(v)),
            Value::Object(map) => {
                for (k, v) in map {
                    self.keys.push(k.clone());
                    self.collect(v);
                }
            }
            _ => {}
        }
    }
}

/// Apply 1 to 8 structural mutations to `value`.
pub fn mutate_value(rng: &mut Rng, dictionary: &Dictionary, value: &mut Value) {
    for _ in 0..=rng.below(8) {
        let node = random_node(rng, value);
        mutate_node(rng, dictionary, node);
    }
}

fn random_node<'a>(rng: &mut Rng, value: &'a mut Value) -> &'a mut Value {
    if rng.one_in(4) {
        return value;
    }
    let len = match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    };
    if len == 0 {
        return value;
    }
    let i = rng.below(len);
    match value {
        Value::Array(items) => random_node(rng, &mut items[i]),
        Value::Object(map) => {
            let child = map.values_mut().nth(i).expect("index below len");
            random_node(rng, child)
        }
        _ => unreachable!("len is 0 for scalars"),
    }
}

fn mutate_node(rng: &mut Rng, dictionary: &Dictionary, node: &mut Value) {
    match rng.below(12) {
        0 => *node = scalar(rng, dictionary),
        1 => {
            if let Value::String(s) = node {
                *s = mutate_string(rng, dictionary, s);
            } else {
                *node = Value::String(mutate_string(rng, dictionary, &node.to_string()));
            }
        }
        2 => *node = change_type(rng, std::mem::take(node)),
        3 => remove_child(rng, node),
        4 => duplicate_child(rng, node),
        5 => insert_key(rng, dictionary, node),
        6 => *node = nest(rng, std::mem::take(node)),
        7 if rng.one_in(3) => *node = huge(rng, dictionary, std::mem::take(node)),
        8 => *node = rng.pick(&dictionary.subtrees).clone(),
        9 => *node = Value::Null,
        10 => *node = Value::String(rng.pick(&dictionary.strings).clone()),
        _ => *node = Value::Array(vec![std::mem::take(node)]),
    }
}

fn scalar(rng: &mut Rng, dictionary: &Dictionary) -> Value {
    match rng.below(8) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::Number(Number::from(rng.next() as i64)),
        3 => Value::Number(Number::from(rng.below(20) as u64)),
        4 => Number::from_f64(f64::from_bits(rng.next())).map_or(Value::Null, Value::Number),
        5 => Value::String(String::new()),
        _ => Value::String(rng.pick(&dictionary.strings).clone()),
    }
}

fn change_type(rng: &mut Rng, value: Value) -> Value {
    match (rng.below(4), value) {
        (0, Value::Object(map)) => Value::Array(map.into_iter().map(|(_, v)| v).collect()),
        (0, Value::Array(items)) => Value::Object(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
        ),
        (1, value) => Value::String(value.to_string()),
        (2, value) => {
            let mut map = Map::new();
            map.insert("value".into(), value);
            Value::Object(map)
        }
        (_, Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::Bool(true), Value::Number),
        (_, value) => Value::Array(vec![value.clone(), value]),
    }
}

fn remove_child(rng: &mut Rng, node: &mut Value) {
    match node {
        Value::Array(items) if !items.is_empty() => {
            items.remove(rng.below(items.len()));
        }
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(rng.below(map.len())).cloned();
            key.map(|k| map.remove(&k));
        }
        _ => *node = Value::Null,
    }
}

fn duplicate_child(rng: &mut Rng, node: &mut Value) {
    match node {
        Value::Array(items) if !items.is_empty() => {
            let item = items[rng.below(items.len())].clone();
            for _ in 0..=rng.below(3) {
                items.insert(rng.below(items.len() + 1), item.clone());
            }
        }
        Value::Object(map) if !map.is_empty() => {
            let (k, v) = map.iter().nth(rng.below(map.len())).expect("non-empty");
            let (k, v) = (format!("{k}{}", rng.below(3)), v.clone());
            map.insert(k, v);
        }
        _ => {}
    }
}

fn insert_key(rng: &mut Rng, dictionary: &Dictionary, node: &mut Value) {
    let key = rng.pick(&dictionary.keys).clone();
    let value = if rng.one_in(2) {
        rng.pick(&dictionary.subtrees).clone()
    } else {
        scalar(rng, dictionary)
    };
    match node {
        Value::Object(map) => {
            map.insert(key, value);
        }
        Value::Array(items) => items.push(value),
        other => {
            let mut map = Map::new();
            map.insert(key, std::mem::take(other));
            *other = Value::Object(map);
        }
    }
}

fn nest(rng: &mut Rng, mut value: Value) -> Value {
    let depth = if rng.one_in(8) {
        100 + rng.below(200)
    } else {
        1 + rng.below(8)
    };
    let in_objects = rng.one_in(2);
    for _ in 0..depth {
        value = if in_objects {
            let mut map = Map::new();
            map.insert("a".into(), value);
            Value::Object(map)
        } else {
            Value::Array(vec![value])
        };
    }
    value
}

fn huge(rng: &mut Rng, dictionary: &Dictionary, value: Value) -> Value {
    // Mostly a few KiB, sometimes a MiB: big inputs are slow, and most bugs need no size.
    let n = if rng.one_in(64) {
        1 << 20
    } else {
        1 + rng.below(5000)
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            // At most a few MiB of text, whatever the item.
            let item = items[0].clone();
            let fit = (2 << 20) / (item.to_string().len() + 1);
            Value::Array(vec![item; n.min(5000).min(fit.max(1))])
        }
        Value::Object(mut map) => {
            for i in 0..n.min(2000) {
                map.insert(format!("k{i}"), Value::Null);
            }
            Value::Object(map)
        }
        _ => {
            let unit = rng.pick(&dictionary.strings).clone();
            let unit = if unit.is_empty() {
                "a".to_string()
            } else {
                unit
            };
            Value::String(unit.repeat(n / unit.len().max(1) + 1))
        }
    }
}

/// Mutate a short string: splice in nasty strings, cut, repeat, change case, flip characters.
pub fn mutate_string(rng: &mut Rng, dictionary: &Dictionary, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(8) {
            0 | 1 => {
                let insert: Vec<char> = rng.pick(&dictionary.strings).chars().collect();
                chars.splice(at..at, insert);
            }
            2 if !chars.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            3 => chars.truncate(at),
            4 => {
                let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}');
                chars.insert(at, c);
            }
            5 => {
                let c = *rng.pick(&[
                    ':', '/', '@', '.', '-', '%', '$', '{', '}', '*', ' ', '\0', 'é',
                ]);
                chars.insert(at, c);
            }
            6 if !chars.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(chars.len());
                let part: Vec<char> = chars[at.min(end)..end].to_vec();
                for _ in 0..rng.below(64) {
                    chars.splice(at..at, part.iter().copied());
                }
            }
            _ => chars = chars.iter().map(|c| flip_case(rng, *c)).collect(),
        }
    }
    chars.into_iter().collect()
}

fn flip_case(rng: &mut Rng, c: char) -> char {
    if rng.one_in(3) {
        if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        }
    } else {
        c
    }
}

/// Write `value` as JSON, sometimes pretty, sometimes with a duplicated key or an out-of-range number.
pub fn write_json(rng: &mut Rng, value: &Value) -> String {
    let mut out = String::new();
    // Quirks: how many keys may still be written twice (a budget, since doubling nested keys grows exponentially).
    let mut quirks = if rng.one_in(3) { 3 } else { 0 };
    write_value(rng, &mut quirks, value, &mut out);
    out
}

fn write_value(rng: &mut Rng, quirks: &mut usize, value: &Value, out: &mut String) {
    match value {
        Value::Number(_) if *quirks > 0 && rng.one_in(4) => {
            out.push_str(rng.pick::<&str>(ODD_NUMBERS))
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(rng, quirks, item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let times = if *quirks > 0 && rng.one_in(6) {
                    *quirks -= 1;
                    2
                } else {
                    1
                };
                for t in 0..times {
                    if t > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write_value(rng, quirks, v, out);
                }
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Byte sequences worth splicing into any text.
const TOKENS: &[&[u8]] = &[
    b"\xff",
    b"\xc3\x28",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\0",
    b"\\u0000",
    b"\\ud800",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"1e999",
    b"%",
    b"%FF",
    b"%7B",
    b"\n",
    b"\t",
    b"- ",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"---\n",
    b"<<: ",
    b"? ",
    b"|\n",
    b"'",
];

/// Apply 1 to 8 byte-level mutations to `bytes`.
pub fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..=rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(8) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 if at < bytes.len() => bytes[at] = rng.next() as u8,
            2 => {
                let token = rng.pick(TOKENS);
                bytes.splice(at..at, token.iter().copied());
            }
            3 if at < bytes.len() => {
                let end = (at + 1 + rng.below(32)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 if at < bytes.len() => {
                let end = (at + 1 + rng.below(32)).min(bytes.len());
                let part = bytes[at..end].to_vec();
                bytes.splice(at..at, part);
            }
            5 => bytes.truncate(at),
            6 => {
                const NESTING: [&[u8]; 4] = [b"[", b"{\"a\":", b"- ", b"  "];
                let token = *rng.pick(&NESTING);
                let n = 1 + rng.below(2000);
                bytes.splice(at..at, token.repeat(n));
            }
            _ => bytes.insert(at, rng.next() as u8),
        }
    }
}
