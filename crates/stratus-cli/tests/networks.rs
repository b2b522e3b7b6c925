//! Container networks through the real binary (issue 17): on `stratus dev`,
//! a container calls its tenant's service by name; another tenant's
//! container can neither resolve nor reach it; no container reaches a
//! service of the lender's machine; a container's UDP port and a WASM HTTP
//! component's port are published on the node.

mod common;

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{app, tenant_token, wait_until, Dev};

/// Retries `wget URL` for up to a minute (the service may still be
/// starting), then prints what it got or `unreachable`.
fn fetch(url: &str) -> String {
    format!(
        "i=0; until wget -q -O - {url} 2>/dev/null; do i=$((i+1)); [ $i -ge 60 ] && {{ echo unreachable; break; }}; sleep 1; done"
    )
}

/// An address of this machine that is not loopback.
fn own_address() -> IpAddr {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("this machine has a non-loopback IPv4 address")
}

/// Deploys task `name` of the dev cloud's admin on the node of `site`,
/// running `script` in busybox, and returns its output once it ended.
fn task_on(dev: &Dev, dir: &Path, name: &str, site: &str, script: &str) -> String {
    let spec = dir.join(format!("{name}.yaml"));
    let yaml = serde_json::json!({
        "version": 1,
        "name": name,
        "kind": "task",
        "image": { "name": "busybox" },
        "constraints": { "site": site },
        "args": ["sh", "-c", script],
    });
    std::fs::write(&spec, yaml.to_string()).expect("spec written");
    dev.cli(&["deploy", &spec.to_string_lossy()])
        .success("deploy a task");
    wait_until("the task to be placed", Duration::from_secs(60), || {
        let out = dev.cli(&["logs", "--follow", name]);
        out.status.success().then_some(out.stdout).ok_or(out.stderr)
    })
}

#[test]
fn containers_call_services_by_name_and_reach_nothing_else() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 2, 10);
    dev.wait_ready(2);
    let eve = tenant_token(&dev, "eve");
    dev.cli(&["account", "deposit", "eve", "100000000"])
        .success("deposit");
    let as_eve = |args: &[&str]| dev.cli_env(args, &[("STRATUS_TOKEN", &eve)]);
    let tar = root.path().join("busybox.tar");
    stratus_flist::build::busybox_image(Path::new("/bin/busybox"))
        .write_docker_save(&tar, "busybox:latest")
        .expect("busybox-static is installed (scripts/setup-toolchain.sh)");
    let tar = tar.to_string_lossy();
    dev.cli(&["image", "import", &tar]).success("image import");
    as_eve(&["image", "import", &tar]).success("eve's image import");

    // The operator's service `pong`, a web server on port 8080, on the
    // node of site-1.
    let spec = root.path().join("pong.yaml");
    std::fs::write(
        &spec,
        "version: 1\nname: pong\nkind: service\nimage: { name: busybox }\n\
         constraints: { site: site-1 }\n\
         args: [sh, -c, 'mkdir -p /www && echo pong says hi > /www/index.html && exec httpd -f -p 8080 -h /www']\n",
    )
    .expect("spec written");
    dev.cli(&["deploy", &spec.to_string_lossy()])
        .success("deploy pong");

    // Other containers of the same tenant call it by its name and by its
    // fully qualified name: on the same node (straight into its
    // namespace), and on the other node (relayed by the replica, with TLS
    // between the two nodes inside).
    let script = format!(
        "{}; {}",
        fetch("http://pong:8080/"),
        fetch("http://pong.admin.stratus.internal:8080/")
    );
    for (name, site) in [("near", "site-1"), ("far", "site-0")] {
        let out = task_on(&dev, root.path(), name, site, &script);
        assert_eq!(out, "pong says hi\npong says hi\n", "{name}");
    }

    // Eve's container: the name does not exist for her, in either form, and
    // the address her resolver never gave her leads nowhere.
    let out = as_eve(&[
        "run",
        "--image",
        "busybox",
        "--",
        "sh",
        "-c",
        "nslookup pong >/dev/null 2>&1 || echo no-pong; \
         nslookup pong.admin.stratus.internal >/dev/null 2>&1 || echo no-fqdn; \
         wget -q -O - http://198.18.0.1:8080/ 2>/dev/null || echo unreachable",
    ]);
    assert_eq!(
        out.stdout, "no-pong\nno-fqdn\nunreachable\n",
        "stderr: {}",
        out.stderr
    );

    // A service of the lender's machine, on one of its own addresses: the
    // container's connection never gets there.
    let lender = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = lender.local_addr().expect("addr").port();
    let reached = Arc::new(AtomicUsize::new(0));
    let seen = reached.clone();
    std::thread::spawn(move || {
        for c in lender.incoming() {
            if c.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let url = format!("http://{}:{port}/", own_address());
    let out = dev.cli(&[
        "run",
        "--image",
        "busybox",
        "--",
        "sh",
        "-c",
        &format!("wget -q -O - {url} 2>/dev/null || echo refused"),
    ]);
    assert_eq!(out.stdout, "refused\n", "stderr: {}", out.stderr);
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the lender's port was reached"
    );

    // The acceptance: a two-service app, an HTTP frontend container
    // that calls a redis container by name, each on its own node.
    let app = root.path().join("app.tar");
    app::image()
        .write_docker_save(&app, "app:latest")
        .expect("the app image is written");
    dev.cli(&["image", "import", &app.to_string_lossy()])
        .success("import the app");
    let redis = root.path().join("redis.yaml");
    std::fs::write(&redis, app::redis_spec("site-0")).expect("spec written");
    dev.cli(&["deploy", &redis.to_string_lossy()])
        .success("deploy redis");
    let web = root.path().join("web.yaml");
    std::fs::write(&web, app::web_spec("site-1")).expect("spec written");
    dev.cli(&["deploy", &web.to_string_lossy()])
        .success("deploy web");
    let port = published_port(&dev, "web");
    // Until redis runs, the script finds no count and the page is empty.
    let hits = |port: u16, host: &str| -> u64 {
        wait_until("the frontend to count", Duration::from_secs(60), || {
            app::count(&fetch_page(port, host, "/cgi-bin/hits")?)
        })
    };
    // Redis keeps the count: each page view adds one.
    let first = hits(port, "localhost");
    assert_eq!(hits(port, "localhost"), first + 1);
    // Through the ingress, by its host name: the replica routes the
    // request to the frontend's node over the node's tunnel link.
    assert_eq!(hits(dev.ingress_port, app::HOST), first + 2);
    let shown = dev.cli(&["inspect", "web"]).success("inspect web");
    assert!(
        shown.contains(&format!(
            "exposed:    http://{}/ through the ingress",
            app::HOST
        )),
        "{shown}"
    );
    let nobody = fetch_page(dev.ingress_port, "nobody.example.com", "/")
        .expect_err("an unknown host is not served");
    assert!(nobody.contains(" 404 "), "{nobody}");

    published_udp_and_component_ports(&dev, root.path());
}

/// A container's UDP port and a WASM HTTP component's port, published on
/// the node: reached from outside the cluster.
fn published_udp_and_component_ports(dev: &Dev, dir: &Path) {
    // socat answers each datagram from its own process.
    let image = dir.join("udp.tar");
    stratus_flist::busybox_with_program(Path::new("/bin/busybox"), Path::new("/usr/bin/socat"))
        .expect("busybox-static and socat are installed (scripts/setup-toolchain.sh)")
        .write_docker_save(&image, "udp:latest")
        .expect("the UDP image is written");
    dev.cli(&["image", "import", &image.to_string_lossy()])
        .success("import the UDP image");
    let spec = dir.join("echo.yaml");
    std::fs::write(
        &spec,
        "version: 1\nname: echo\nkind: service\n\
         image: { name: udp, ports: [{ container: 5353, protocol: udp }] }\n\
         args: [socat, 'UDP4-RECVFROM:5353,fork', 'SYSTEM:read x; echo pong $x']\n",
    )
    .expect("spec written");
    dev.cli(&["deploy", &spec.to_string_lossy()])
        .success("deploy echo");
    let port = published_port(dev, "echo");
    // Two clients, each answered on its own flow (socat may still be
    // starting: datagrams are retried).
    let ask = |what: &str| -> String {
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        client
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        wait_until("an answer over UDP", Duration::from_secs(60), || {
            client
                .send_to(format!("{what}\n").as_bytes(), ("127.0.0.1", port))
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 256];
            let n = client.recv(&mut buf).map_err(|e| e.to_string())?;
            Ok::<_, String>(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    };
    assert_eq!(ask("ping"), "pong ping\n");
    assert_eq!(ask("again"), "pong again\n");
    let shown = dev.cli(&["inspect", "echo"]).success("inspect echo");
    assert!(
        shown.contains("udp:        port 5353 published on any free port"),
        "{shown}"
    );

    // The WASM HTTP component of the examples, on a port of the node.
    let component = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/wasm/http.wasm")
        .canonicalize()
        .expect("examples/wasm/http.wasm");
    let spec = wasm_on_a_port(dir, "hello", &component);
    dev.cli(&["deploy", &spec.to_string_lossy()])
        .success("deploy hello");
    let port = published_port(dev, "hello");
    let page = wait_until("the component's page", Duration::from_secs(60), || {
        fetch_page(port, "localhost", "/hi")
    });
    assert_eq!(page, "hello from wasm: GET /hi (host localhost)\n");

    // A module that is no HTTP component asks for a port: it fails at
    // start, saying why, and binds nothing.
    let plain = component.with_file_name("service.wat");
    let spec = wasm_on_a_port(dir, "plain", &plain);
    dev.cli(&["deploy", &spec.to_string_lossy()])
        .success("deploy plain");
    wait_until("plain to fail", Duration::from_secs(90), || {
        let shown = dev.cli(&["inspect", "plain"]).stdout;
        shown
            .contains("the module is not an HTTP component")
            .then_some(())
            .ok_or(shown)
    });
    let ps = dev.cli(&["ps", "--json"]).stdout;
    assert_eq!(app::published_port(&ps, "admin/plain"), None, "{ps}");
}

/// Writes the spec of service `name`: WASM `module` on a free port of the
/// node; returns its path.
fn wasm_on_a_port(dir: &Path, name: &str, module: &Path) -> std::path::PathBuf {
    let spec = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: {name}\nkind: service\n\
             wasm: {{ module: {}, ports: [{{ host: 0 }}] }}\n",
            module.display()
        ),
    )
    .expect("spec written");
    spec
}

/// The host port the admin's workload `name` published, once it has.
fn published_port(dev: &Dev, name: &str) -> u16 {
    wait_until(
        &format!("{name}'s published port"),
        Duration::from_secs(90),
        || {
            let out = dev.cli(&["ps", "--json"]);
            app::published_port(&out.stdout, &format!("admin/{name}")).ok_or(out.stdout)
        },
    )
}

/// GET `path` of `host` from 127.0.0.1:`port` (HTTP/1.0): the body of a
/// 200, else the head of the answer.
fn fetch_page(port: u16, host: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    // CGI headers may end lines with a bare newline.
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .ok_or(text.clone())?;
    if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(head.to_string())
    }
}
