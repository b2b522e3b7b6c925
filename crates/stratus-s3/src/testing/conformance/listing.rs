//! Listing: object ordering, prefix, start_after and limit; version paging.

use super::*;

/// list_objects ordering, prefix, start_after and limit.
pub async fn list_ordering<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "l").await.expect("create");
    let keys = ["b/2", "a", "b/1", "c", "b/10", "ab", "b", "é", "Z"];
    for k in keys {
        put(b, A, "l", k, k.as_bytes()).await;
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let all: Vec<String> = b
        .list_objects(A, "l", "", None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all, sorted, "sorted by key bytes");
    let pre: Vec<String> = b
        .list_objects(A, "l", "b/", None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(pre, ["b/1", "b/10", "b/2"]);
    let after: Vec<String> = b
        .list_objects(A, "l", "", Some("b/10"), 2)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        after,
        ["b/2", "c"],
        "start_after is exclusive; limit applies"
    );
    let before_prefix: Vec<String> = b
        .list_objects(A, "l", "b/", Some("a"), 100)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        before_prefix,
        ["b/1", "b/10", "b/2"],
        "start_after before the prefix"
    );
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = b
            .list_objects(A, "l", "", cursor.as_deref(), 2)
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|o| o.key.clone());
        paged.extend(page.into_iter().map(|o| o.key));
    }
    assert_eq!(
        paged, sorted,
        "paging with start_after visits each key once"
    );
    let info = &b.list_objects(A, "l", "a", None, 1).await.expect("list")[0];
    assert_eq!(
        (info.size, info.etag.as_str()),
        (1, md5_hex(b"a").as_str()),
        "listed info is complete"
    );
}

/// list_versions paging with key and version markers.
pub async fn list_versions_paging<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "p").await.expect("create");
    b.set_versioning(A, "p", Versioning::Enabled)
        .await
        .expect("enable");
    for k in ["x", "y", "z"] {
        for i in 0..3 {
            put(b, A, "p", k, format!("{k}{i}").as_bytes()).await;
        }
    }
    b.delete_object(A, "p", "y", None, None)
        .await
        .expect("marker");
    let all = b
        .list_versions(A, "p", "", None, None, 1000)
        .await
        .expect("all");
    assert_eq!(all.len(), 10);
    let keys: Vec<&str> = all.iter().map(|e| e.info.key.as_str()).collect();
    assert_eq!(
        keys,
        ["x", "x", "x", "y", "y", "y", "y", "z", "z", "z"],
        "sorted by key"
    );
    assert_eq!(
        all.iter().filter(|e| e.is_latest).count(),
        3,
        "one latest per key"
    );
    for page_size in [1, 2, 3, 4] {
        let mut seen = Vec::new();
        let mut km: Option<String> = None;
        let mut vm: Option<String> = None;
        loop {
            let page = b
                .list_versions(A, "p", "", km.as_deref(), vm.as_deref(), page_size)
                .await
                .expect("page");
            let Some(last) = page.last() else { break };
            km = Some(last.info.key.clone());
            vm = Some(last.info.version_id.clone());
            seen.extend(page.into_iter().map(|e| e.info.version_id));
        }
        let want: Vec<String> = all.iter().map(|e| e.info.version_id.clone()).collect();
        assert_eq!(seen, want, "paging by {page_size} with markers");
    }
    let after_y = b
        .list_versions(A, "p", "", Some("y"), None, 1000)
        .await
        .expect("after y");
    assert!(
        after_y.iter().all(|e| e.info.key == "z"),
        "a key marker alone skips all its versions"
    );
}
