//! Lending machines behind NATs, through the real binary in network
//! namespaces (`stratus_testkit::netns::NatLab`): a control replica on a
//! public segment, three homes each behind its own masquerading router
//! that lets nothing in. The homes' nodes dial out; they lend disk over the
//! piece links they dial, so objects are stored on and read back from
//! machines no replica can reach; and the two-service app (an HTTP
//! frontend that calls redis by name) runs with each service in another
//! home, its first connection relayed by the replica over the tunnel links
//! the homes dialed, the next ones direct once the replica introduced the
//! homes (hole punching); two machines behind one NAT reach each other at
//! the private addresses they told each other; a home behind a NAT that
//! maps each flow to another port is not punched through, and its
//! connections stay relayed.

mod common;

use std::time::Duration;

use common::{app, cli_in, wait_until, CliOutput, Proc};
use rand::RngCore;
use stratus_testkit::netns::{NatLab, PUBLIC_ADDR};

const HOMES: usize = 3;

/// GET `path` of `host` through the replica's ingress, from the public
/// segment (`public`): the body of a 2xx, else why not.
fn through_ingress(public: &str, host: &str, path: &str) -> Result<String, String> {
    let out = stratus_testkit::netns::in_namespace(
        public,
        std::process::Command::new("curl").args([
            "-s",
            "-S",
            "-f",
            "-m",
            "10",
            "-H",
            &format!("Host: {host}"),
            &format!("http://{PUBLIC_ADDR}:7490{path}"),
        ]),
    )
    .output()
    .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Waits (at most `timeout`) until `node` logged a line holding every one
/// of `parts`.
fn logged(node: &Proc, what: &str, parts: &[&str], timeout: Duration) {
    wait_until(what, timeout, || {
        let log = node.stderr();
        log.lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
            .then_some(())
            .ok_or(log)
    });
}

/// Writes `spec` as `NAME.yaml` in `dir` and deploys it with `cli`.
fn deploy(cli: &dyn Fn(&[&str]) -> CliOutput, dir: &std::path::Path, name: &str, spec: &str) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, spec).expect("spec written");
    cli(&["deploy", &file.to_string_lossy()]).success(&format!("deploy {name}"));
}

/// The whole output of task `name` once it has ended.
fn output_of(cli: &dyn Fn(&[&str]) -> CliOutput, name: &str) -> String {
    wait_until(&format!("{name} to end"), Duration::from_secs(120), || {
        let out = cli(&["logs", "--follow", name]);
        out.status.success().then_some(out.stdout).ok_or(out.stderr)
    })
}

#[test]
fn nodes_behind_nats_lend_disk_to_a_replica_that_cannot_reach_them() {
    // Home 2's router maps each flow to another port: no hole punching
    // reaches it; homes 0 and 1 reach each other directly.
    let lab =
        NatLab::with_symmetric(HOMES, &[2]).expect("the network lab (needs root, ip and iptables)");
    let root = tempfile::tempdir().expect("tempdir");
    let public = lab.public();
    // The lab is real: the public side has no route into a home.
    let probe = std::process::Command::new("ip")
        .args(["-n", &public, "route", "get", &lab.home_addr(0)])
        .output()
        .expect("ip route get");
    assert!(
        !probe.status.success(),
        "the public segment routes to a home"
    );

    let data_dir = root.path().join("replica");
    let quic = format!("{PUBLIC_ADDR}:7400");
    let api = format!("http://{PUBLIC_ADDR}:7420");
    let replica = Proc::spawn_in(
        Some(&public),
        "replica",
        &root.path().join("logs"),
        vec![
            "server".into(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into(),
            "--name".into(),
            "replica".into(),
            "--listen".into(),
            quic.clone(),
            "--api-listen".into(),
            format!("{PUBLIC_ADDR}:7420"),
            "--ingress-listen".into(),
            format!("{PUBLIC_ADDR}:7490"),
            "--log".into(),
            "warn".into(),
        ],
    );
    replica.wait_line("its start line", Duration::from_secs(60), |l| {
        l.starts_with("stratus server: node ")
    });
    let join = data_dir.join("control").join("join.token");
    let token_file = data_dir.join("control").join("admin.token");
    wait_until("the cluster to bootstrap", Duration::from_secs(60), || {
        (join.exists() && token_file.exists())
            .then_some(())
            .ok_or("no tokens yet".to_string())
    });
    let token = std::fs::read_to_string(&token_file)
        .expect("admin token")
        .trim()
        .to_string();
    let env = [
        ("STRATUS_API", api.as_str()),
        ("STRATUS_TOKEN", token.as_str()),
    ];
    let as_admin = |args: &[&str]| cli_in(Some(&public), args, &env);

    // One node in each home, and a second one in home 0 ("home-0b",
    // behind the same NAT as home-0).
    let machines: Vec<(usize, String)> = (0..HOMES)
        .map(|i| (i, format!("home-{i}")))
        .chain([(0, "home-0b".to_string())])
        .collect();
    let nodes: Vec<Proc> = machines
        .iter()
        .map(|(i, name)| {
            let i = *i;
            Proc::spawn_in(
                Some(&lab.home(i)),
                name,
                &root.path().join("logs"),
                vec![
                    "node".into(),
                    "--data-dir".into(),
                    root.path().join(name).to_string_lossy().into(),
                    "--name".into(),
                    name.clone(),
                    "--control".into(),
                    quic.clone(),
                    "--join-token-file".into(),
                    join.to_string_lossy().into(),
                    "--site".into(),
                    name.clone(),
                    // No --storage-listen: nothing can reach it anyway.
                    "--storage-capacity".into(),
                    "1GiB".into(),
                    // The lender lets containers reach the public segment
                    // (a private range, denied by default).
                    "--egress-allow".into(),
                    "10.77.0.0/24".into(),
                    "--log".into(),
                    "warn,stratus_agent::direct=info".into(),
                ]
                .into_iter()
                // Containers in homes 0 and 1 only: the app needs two.
                .chain((i >= 2).then(|| "--no-containers".to_string()))
                .collect(),
            )
        })
        .collect();
    // Each node is seen from its router's public address: it is behind NAT.
    wait_until("every home's node ready", Duration::from_secs(90), || {
        let out = as_admin(&["nodes", "ls", "--json"]);
        if !out.status.success() {
            return Err(out.stderr);
        }
        let nodes: serde_json::Value =
            serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
        let ready = nodes
            .as_array()
            .map(|n| n.iter().filter(|n| n["status"] == "ready").count())
            .unwrap_or(0);
        (ready == machines.len())
            .then_some(())
            .ok_or(format!("{ready} ready: {}", out.stdout))
    });

    as_admin(&["bucket", "create", "photos"]).success("bucket create");
    let mut data = vec![0u8; 3 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let file = root.path().join("album.bin");
    std::fs::write(&file, &data).expect("write");
    // Pieces go to the homes once their links are up.
    wait_until(
        "a put onto the homes' disks",
        Duration::from_secs(60),
        || {
            let out = as_admin(&["put", &file.to_string_lossy(), "photos/2026/album.bin"]);
            out.status.success().then_some(()).ok_or(out.stderr)
        },
    );
    let back = root.path().join("back.bin");
    as_admin(&["get", "photos/2026/album.bin", &back.to_string_lossy()]).success("get");
    assert!(std::fs::read(&back).expect("read") == data, "round trip");

    let status = as_admin(&["storage", "status", "--json"]).success("storage status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let holding = status["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|n| n["used_bytes"].as_u64().unwrap_or(0) > 0)
                .count()
        })
        .unwrap_or(0);
    assert!(holding >= 2, "pieces spread over the homes: {status}");
    // The operator sees how each node is reached: over its link.
    let linked = status["nodes"]
        .as_array()
        .map(|n| n.iter().filter(|n| n["piece_link"] == true).count())
        .unwrap_or(0);
    assert_eq!(
        linked,
        machines.len(),
        "every home reached over its link: {status}"
    );
    let table = as_admin(&["storage", "status"]).success("storage status");
    assert_eq!(table.matches(" link").count(), machines.len(), "{table}");

    // The two-service app, redis in home 0 and its frontend in home 1: the
    // frontend finds redis by name, through the replica.
    let image = root.path().join("app.tar");
    app::image()
        .write_docker_save(&image, "app:latest")
        .expect("the app image is written");
    as_admin(&["image", "import", &image.to_string_lossy()]).success("import the app");
    for (name, spec) in [
        ("redis", app::redis_spec("home-0")),
        ("web", app::web_spec("home-1")),
        (
            "visit",
            "version: 1\nname: visit\nkind: task\nimage: { name: app }\n\
             constraints: { site: home-0 }\n\
             args: [sh, -c, 'i=0; until wget -q -O - http://web:8080/cgi-bin/hits 2>/dev/null | grep hits; do i=$((i+1)); [ $i -ge 60 ] && exit 1; sleep 1; done']\n"
                .to_string(),
        ),
    ] {
        deploy(&as_admin, root.path(), name, &spec);
    }
    let out = output_of(&as_admin, "visit");
    assert!(
        app::count(out.lines().last().unwrap_or_default()).is_ok(),
        "the frontend in home 1 counted in redis in home 0: {out:?}"
    );
    // The first connection went through the replica; meanwhile it
    // introduced the two homes, whose NATs keep a flow's port, and home 1
    // dialed home 0 directly (hole punching): the frontend's next
    // connections to redis go direct.
    wait_until(
        "home 1's direct link to home 0",
        Duration::from_secs(60),
        || {
            let (dialer, dialed) = (nodes[1].stderr(), nodes[0].stderr());
            (dialer.contains("direct link to a peer up")
                && dialed.contains("direct link from a peer up"))
            .then_some(())
            .ok_or(format!("home 1:\n{dialer}\nhome 0:\n{dialed}"))
        },
    );

    // From the public segment, through the replica's ingress, by host
    // name: the frontend behind home 1's NAT answers over its tunnel link.
    let page = wait_until(
        "the page through the ingress",
        Duration::from_secs(60),
        || {
            let page = through_ingress(&public, app::HOST, "/cgi-bin/hits")?;
            app::count(&page).map(|_| page)
        },
    );
    assert!(page.starts_with("hits: "), "{page}");

    // A WASM HTTP component on home 2 (a node that runs no containers),
    // exposed as its own host: through the ingress from the public
    // segment, and by name from a container in home 0.
    let component = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/wasm/http.wasm")
        .canonicalize()
        .expect("examples/wasm/http.wasm");
    deploy(
        &as_admin,
        root.path(),
        "hello",
        &format!(
            "version: 1\nname: hello\nkind: service\nwasm: {{ module: {} }}\n\
             constraints: {{ site: home-2 }}\n\
             expose: {{ http: {{ host: wasm.example.com }} }}\n",
            component.display()
        ),
    );
    let page = wait_until(
        "the component through the ingress",
        Duration::from_secs(90),
        || through_ingress(&public, "wasm.example.com", "/hi?from=outside"),
    );
    assert_eq!(
        page,
        "hello from wasm: GET /hi?from=outside (host wasm.example.com)\n"
    );
    deploy(
        &as_admin,
        root.path(),
        "call",
        "version: 1\nname: call\nkind: task\nimage: { name: app }\n\
         constraints: { site: home-0 }\n\
         args: [sh, -c, 'i=0; until wget -q -O - http://hello/by-name 2>/dev/null; do i=$((i+1)); [ $i -ge 60 ] && exit 1; sleep 1; done']\n",
    );
    let out = output_of(&as_admin, "call");
    assert!(
        out.starts_with("hello from wasm: GET /by-name (host hello"),
        "a container in home 0 called the component in home 2 by name: {out:?}"
    );
    // Two machines behind one NAT (home-0b calling redis on home-0): the
    // router does not lead its own public address back in (no
    // hairpinning), so they reach each other at the local addresses they
    // told each other through the replica.
    deploy(
        &as_admin,
        root.path(),
        "neighbour",
        "version: 1\nname: neighbour\nkind: daemon\nimage: { name: app }\n\
         constraints: { site: home-0b }\n\
         args: [sh, -c, 'while true; do printf \"PING\\r\\nQUIT\\r\\n\" | nc redis 6379 | head -1; sleep 1; done']\n",
    );
    let home0 = lab.home_addr(0);
    logged(
        &nodes[3],
        "home-0b's direct link to home-0 on their network",
        &["direct link to a peer up", &home0],
        Duration::from_secs(90),
    );
    let out = wait_until("the neighbour's answers", Duration::from_secs(60), || {
        let out = as_admin(&["logs", "neighbour"]);
        (out.status.success() && out.stdout.matches("+PONG").count() >= 3)
            .then_some(out.stdout.clone())
            .ok_or(format!("{}{}", out.stdout, out.stderr))
    });
    assert!(out.contains("+PONG"), "{out}");

    // Behind home 2's NAT nothing punched through: home 0 says so, and
    // its connections to home 2 stayed relayed (the call above worked).
    let listed = as_admin(&["nodes", "ls", "--json"]).success("nodes ls");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("nodes JSON");
    let home2 = listed
        .as_array()
        .and_then(|n| n.iter().find(|n| n["info"]["name"] == "home-2"))
        .and_then(|n| n["info"]["id"].as_str())
        .map(|id| id[..8].to_string())
        .expect("home 2's id");
    logged(
        &nodes[0],
        "home 0 to give up reaching home 2 directly",
        &["no direct link to the peer", &home2],
        Duration::from_secs(60),
    );
    assert!(
        !nodes[2].stderr().contains("direct link from a peer up"),
        "{}",
        nodes[2].stderr()
    );

    // Another tenant's container, in the home where redis runs and
    // relayed or direct to the other: the admin's services do not exist
    // for it, by name or fully qualified.
    let eve = wait_until("eve's token", Duration::from_secs(30), || {
        let out = as_admin(&["tenants", "create", "eve"]);
        match out.stdout.lines().last() {
            Some(t) if out.status.success() => Ok(t.trim().to_string()),
            _ => Err(out.stderr),
        }
    });
    as_admin(&["account", "deposit", "eve", "100000000"]).success("deposit");
    let eve_env = [
        ("STRATUS_API", api.as_str()),
        ("STRATUS_TOKEN", eve.as_str()),
    ];
    let as_eve = |args: &[&str]| cli_in(Some(&public), args, &eve_env);
    as_eve(&["image", "import", &image.to_string_lossy()]).success("eve's image import");
    deploy(
        &as_eve,
        root.path(),
        "snoop",
        "version: 1\nname: snoop\nkind: task\nimage: { name: app }\n\
         constraints: { site: home-0 }\n\
         args: [sh, -c, 'nslookup redis >/dev/null 2>&1 || echo no-redis; \
         nslookup web.admin.stratus.internal >/dev/null 2>&1 || echo no-web; \
         wget -q -O - http://web:8080/cgi-bin/hits 2>/dev/null || echo unreachable']\n",
    );
    let out = output_of(&as_eve, "snoop");
    assert_eq!(out, "no-redis\nno-web\nunreachable\n", "eve's container");

    // The tenant's egress narrows the lender's: the replica's API on the
    // public segment is reached by default, not with `egress: none`, and
    // only when listed with a list of ranges.
    let probe = format!(
        "wget -S -O /dev/null http://{PUBLIC_ADDR}:7420/ 2>&1 | grep -q HTTP/ && echo reached || echo blocked"
    );
    for (name, network, expect) in [
        ("open", "", "reached"),
        ("closed", "network: { egress: none }\n", "blocked"),
        ("listed", "network: { egress: [10.77.0.1/32] }\n", "reached"),
        (
            "unlisted",
            "network: { egress: [10.77.0.9/32] }\n",
            "blocked",
        ),
    ] {
        let spec = format!(
            "version: 1\nname: {name}\nkind: task\nimage: {{ name: app }}\n\
             constraints: {{ site: home-0 }}\nargs: [sh, -c, '{probe}']\n{network}"
        );
        deploy(&as_admin, root.path(), name, &spec);
        let out = output_of(&as_admin, name);
        assert_eq!(out.trim(), expect, "{name}");
    }

    // Stopped as an operator stops them, the nodes stop the containers
    // they run: none of the app's processes (in containers' cgroups) is
    // left running on the machine.
    let containers = || -> Vec<String> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter(|p| {
                std::fs::read_to_string(p.path().join("cgroup"))
                    .is_ok_and(|c| c.contains("/stratus/"))
            })
            .filter_map(|p| std::fs::read_to_string(p.path().join("cmdline")).ok())
            .filter(|c| c.starts_with("redis-server") || c.starts_with("httpd"))
            .collect()
    };
    assert!(!containers().is_empty(), "redis and the frontend run");
    drop(nodes);
    let left = containers();
    assert!(left.is_empty(), "containers outlived their nodes: {left:?}");
}
