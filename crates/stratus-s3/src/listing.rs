//! Delimiter grouping and pagination on top of the backend's flat, sorted
//! listings. Pure helpers plus two loops that page through the backend.

use crate::backend::{Backend, BackendResult, ObjectInfo, VersionEntry};

/// How many entries the gateway asks the backend for at a time.
pub(crate) const BATCH: usize = 1000;

/// A character greater than any other: `cp + MAX_CHAR` sorts after every key
/// that starts with `cp` (except keys continuing with `MAX_CHAR`, which the
/// loops skip by comparing common prefixes anyway).
const MAX_CHAR: char = '\u{10FFFF}';

/// One item of a grouped listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item<T> {
    /// An entry (object or version).
    Entry(T),
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

/// A page of a grouped listing.
#[derive(Debug)]
pub(crate) struct Page<T> {
    /// Entries and common prefixes, in key order.
    pub items: Vec<Item<T>>,
    /// True if more items follow the page.
    pub truncated: bool,
}

/// The common prefix `key` rolls up into: `prefix` plus everything up to and
/// including the first `delimiter` after it.
pub(crate) fn common_prefix<'a>(
    key: &'a str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Option<&'a str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    let at = rest.find(delimiter)?;
    key.get(..prefix.len() + at + delimiter.len())
}

/// How many entries to ask the backend for: one more than a page when
/// nothing is grouped (enough to know whether the page is truncated), a full
/// batch otherwise (grouping may skip many).
fn batch_size(delimiter: Option<&str>, max: usize) -> usize {
    match delimiter {
        Some(d) if !d.is_empty() => BATCH,
        _ => max.saturating_add(1).min(BATCH),
    }
}

/// Lists latest objects grouped by `delimiter`, starting after `marker`
/// (a key or a common prefix returned earlier), at most `max` items.
pub(crate) async fn list_objects_grouped<B: Backend>(
    backend: &B,
    tenant: &str,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    max: usize,
) -> BackendResult<Page<ObjectInfo>> {
    let mut items = Vec::new();
    // A marker that is itself a common prefix means: skip everything under it.
    let mut last_cp: Option<String> = marker.map(str::to_owned);
    let mut cursor: Option<String> = marker.map(str::to_owned);
    let limit = batch_size(delimiter, max);
    loop {
        let batch = backend
            .list_objects(tenant, bucket, prefix, cursor.as_deref(), limit)
            .await?;
        let n = batch.len();
        for obj in batch {
            if cursor.as_deref().is_none_or(|c| obj.key.as_str() > c) {
                cursor = Some(obj.key.clone());
            }
            match common_prefix(&obj.key, prefix, delimiter) {
                Some(cp) => {
                    if last_cp.as_deref() == Some(cp) {
                        continue;
                    }
                    if items.len() >= max {
                        return Ok(Page {
                            items,
                            truncated: true,
                        });
                    }
                    let cp = cp.to_owned();
                    let skip_to = format!("{cp}{MAX_CHAR}");
                    if cursor.as_deref().is_none_or(|c| skip_to.as_str() > c) {
                        cursor = Some(skip_to);
                    }
                    last_cp = Some(cp.clone());
                    items.push(Item::Prefix(cp));
                }
                None => {
                    if items.len() >= max {
                        return Ok(Page {
                            items,
                            truncated: true,
                        });
                    }
                    items.push(Item::Entry(obj));
                }
            }
        }
        if n < limit {
            return Ok(Page {
                items,
                truncated: false,
            });
        }
    }
}

/// Lists versions grouped by `delimiter`, starting after
/// (`key_marker`, `version_marker`), at most `max` items.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn list_versions_grouped<B: Backend>(
    backend: &B,
    tenant: &str,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_marker: Option<&str>,
    max: usize,
) -> BackendResult<Page<VersionEntry>> {
    let mut items = Vec::new();
    let mut last_cp: Option<String> = key_marker.map(str::to_owned);
    let mut cursor: Option<(String, Option<String>)> =
        key_marker.map(|k| (k.to_owned(), version_marker.map(str::to_owned)));
    let limit = batch_size(delimiter, max);
    loop {
        let (ck, cv) = match &cursor {
            Some((k, v)) => (Some(k.as_str()), v.as_deref()),
            None => (None, None),
        };
        let batch = backend
            .list_versions(tenant, bucket, prefix, ck, cv, limit)
            .await?;
        let n = batch.len();
        for entry in batch {
            let key = entry.info.key.clone();
            let beyond = cursor
                .as_ref()
                .is_none_or(|(c, _)| key.as_str() >= c.as_str());
            if beyond {
                cursor = Some((key.clone(), Some(entry.info.version_id.clone())));
            }
            match common_prefix(&key, prefix, delimiter) {
                Some(cp) => {
                    if last_cp.as_deref() == Some(cp) {
                        continue;
                    }
                    if items.len() >= max {
                        return Ok(Page {
                            items,
                            truncated: true,
                        });
                    }
                    let cp = cp.to_owned();
                    cursor = Some((format!("{cp}{MAX_CHAR}"), None));
                    last_cp = Some(cp.clone());
                    items.push(Item::Prefix(cp));
                }
                None => {
                    if items.len() >= max {
                        return Ok(Page {
                            items,
                            truncated: true,
                        });
                    }
                    items.push(Item::Entry(entry));
                }
            }
        }
        if n < limit {
            return Ok(Page {
                items,
                truncated: false,
            });
        }
    }
}

/// Percent-encodes a key for `encoding-type=url` responses: everything but
/// RFC 3986 unreserved characters and `/`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/b", Some("/")), None);
        assert_eq!(common_prefix("a/", "a/", Some("/")), None);
        assert_eq!(common_prefix("a/", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("abc", "", None), None);
        assert_eq!(common_prefix("abc", "", Some("")), None);
        assert_eq!(common_prefix("x--y--z", "x", Some("--")), Some("x--"));
        // a prefix that ends inside a multi-byte character never panics
        assert_eq!(common_prefix("é/x", "\u{1}", Some("/")), None);
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
    }

    mod model {
        use super::super::*;
        use crate::backend::{Backend, PutMeta, Versioning};
        use crate::testing::MemBackend;
        use proptest::prelude::*;

        fn item_key<T>(i: &Item<T>, key: impl Fn(&T) -> String) -> String {
            match i {
                Item::Entry(e) => key(e),
                Item::Prefix(p) => format!("P:{p}"),
            }
        }

        /// What a grouped listing must return, computed naively.
        fn expected(keys: &[String], prefix: &str, delimiter: Option<&str>) -> Vec<String> {
            let mut sorted: Vec<&String> = keys.iter().filter(|k| k.starts_with(prefix)).collect();
            sorted.sort();
            sorted.dedup();
            let mut out: Vec<String> = Vec::new();
            for k in sorted {
                let item = match common_prefix(k, prefix, delimiter) {
                    Some(cp) => format!("P:{cp}"),
                    None => k.clone(),
                };
                if out.last() != Some(&item) {
                    out.push(item);
                }
            }
            out
        }

        fn keys() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec("[ab/]{1,5}", 0..25)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            #[test]
            fn paged_objects_match_the_model(
                keys in keys(),
                prefix in "[ab/]{0,2}",
                delimiter in prop::option::of(prop::sample::select(vec!["/", "b", "a/"])),
                max in 1usize..5,
            ) {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let got = rt.block_on(async {
                    let b = MemBackend::new();
                    b.create_bucket("t", "b").await.unwrap();
                    for k in &keys {
                        let body: crate::ByteStream = Box::pin(futures::stream::empty());
                        b.put_object("t", "b", k, PutMeta::default(), body, None).await.unwrap();
                    }
                    let mut out = Vec::new();
                    let mut marker: Option<String> = None;
                    loop {
                        let page = list_objects_grouped(&b, "t", "b", &prefix, delimiter, marker.as_deref(), max)
                            .await
                            .unwrap();
                        assert!(page.items.len() <= max);
                        assert!(!page.truncated || page.items.len() == max);
                        marker = page.items.last().map(|i| match i {
                            Item::Entry(o) => o.key.clone(),
                            Item::Prefix(p) => p.clone(),
                        });
                        out.extend(page.items.iter().map(|i| item_key(i, |o| o.key.clone())));
                        if !page.truncated {
                            break;
                        }
                    }
                    out
                });
                prop_assert_eq!(got, expected(&keys, &prefix, delimiter));
            }

            #[test]
            fn paged_versions_match_the_model(
                keys in keys(),
                prefix in "[ab/]{0,2}",
                delimiter in prop::option::of(prop::sample::select(vec!["/", "b"])),
                max in 1usize..5,
            ) {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let (got, want) = rt.block_on(async {
                    let b = MemBackend::new();
                    b.create_bucket("t", "b").await.unwrap();
                    b.set_versioning("t", "b", Versioning::Enabled).await.unwrap();
                    for k in &keys {
                        let body: crate::ByteStream = Box::pin(futures::stream::empty());
                        b.put_object("t", "b", k, PutMeta::default(), body, None).await.unwrap();
                    }
                    // The model: every version in backend order, grouped.
                    let all = b.list_versions("t", "b", &prefix, None, None, 10_000).await.unwrap();
                    let mut want: Vec<String> = Vec::new();
                    for e in &all {
                        let item = match common_prefix(&e.info.key, &prefix, delimiter) {
                            Some(cp) => format!("P:{cp}"),
                            None => format!("{}@{}", e.info.key, e.info.version_id),
                        };
                        if !(item.starts_with("P:") && want.last() == Some(&item)) {
                            want.push(item);
                        }
                    }
                    let mut out = Vec::new();
                    let mut km: Option<String> = None;
                    let mut vm: Option<String> = None;
                    loop {
                        let page = list_versions_grouped(
                            &b, "t", "b", &prefix, delimiter, km.as_deref(), vm.as_deref(), max,
                        )
                        .await
                        .unwrap();
                        assert!(page.items.len() <= max);
                        (km, vm) = match page.items.last() {
                            Some(Item::Entry(e)) => (Some(e.info.key.clone()), Some(e.info.version_id.clone())),
                            Some(Item::Prefix(p)) => (Some(p.clone()), None),
                            None => (None, None),
                        };
                        out.extend(page.items.iter().map(|i| {
                            item_key(i, |e| format!("{}@{}", e.info.key, e.info.version_id))
                        }));
                        if !page.truncated {
                            break;
                        }
                    }
                    (out, want)
                });
                prop_assert_eq!(got, want);
            }
        }
    }
}
