//! The two-service app of the network tests (issue 17's acceptance): an
//! HTTP frontend (busybox httpd with a CGI script) that counts page views
//! in redis (Debian's redis-server), which it finds by name.

use std::path::Path;

/// The frontend's page: a CGI script of busybox httpd that counts hits in
/// redis, found by its name.
const HITS_CGI: &str = "#!/bin/sh\n\
echo 'Content-Type: text/plain'\n\
echo\n\
n=$(printf 'INCR hits\\r\\nQUIT\\r\\n' | nc redis 6379 | head -1 | tr -d ':\\r')\n\
[ -n \"$n\" ] || exit 1\n\
echo \"hits: $n\"\n";

/// redis, on the node of `site`.
pub fn redis_spec(site: &str) -> String {
    format!(
        "version: 1\nname: redis\nkind: service\nimage: {{ name: app }}\n\
         constraints: {{ site: {site} }}\n\
         args: [redis-server, --bind, 127.0.0.1, --port, '6379', --save, '', --appendonly, 'no']\n"
    )
}

/// The host name the frontend is exposed as through the ingress.
pub const HOST: &str = "app.example.com";

/// The frontend, on the node of `site`, published on a host port and
/// exposed as [`HOST`] through the ingress.
pub fn web_spec(site: &str) -> String {
    format!(
        "version: 1\nname: web\nkind: service\n\
         image: {{ name: app, ports: [{{ container: 8080 }}] }}\n\
         constraints: {{ site: {site} }}\n\
         args: [httpd, -f, -p, '8080', -h, /www]\n\
         expose: {{ http: {{ host: {HOST}, port: 8080 }} }}\n"
    )
}

/// The count a page of the frontend shows (an empty page until redis
/// answers).
pub fn count(page: &str) -> Result<u64, String> {
    page.trim()
        .strip_prefix("hits: ")
        .and_then(|n| n.parse().ok())
        .ok_or(format!("not a count: {page:?}"))
}

/// busybox, redis-server (Debian's, with its libraries) and the frontend's
/// CGI script.
pub fn image() -> stratus_flist::ImageBuilder {
    stratus_flist::busybox_with_program(
        Path::new("/bin/busybox"),
        Path::new("/usr/bin/redis-server"),
    )
    .expect("busybox-static and redis-server are installed (scripts/setup-toolchain.sh)")
    .layer(vec![
        stratus_flist::LayerEntry::dir("www", 0o755),
        stratus_flist::LayerEntry::dir("www/cgi-bin", 0o755),
        stratus_flist::LayerEntry::file("www/cgi-bin/hits", 0o755, HITS_CGI),
    ])
}

/// The host port `workload`'s instance published, from `stratus ps --json`.
pub fn published_port(ps_json: &str, workload: &str) -> Option<u16> {
    let list: serde_json::Value = serde_json::from_str(ps_json).ok()?;
    list.as_array()?
        .iter()
        .filter(|i| i["workload"] == workload)
        .flat_map(|i| i["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| {
            let m = e["message"].as_str()?;
            m.split("published on ")
                .nth(1)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .next_back()
}
