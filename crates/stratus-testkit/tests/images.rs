//! Container images on an in-process cluster: import into the object store,
//! lazy FUSE start on an agent, a real service from Debian packages on a
//! published port, and a corrupted cached chunk that never reaches the
//! container.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rand::{RngCore, SeedableRng};
use stratus_control::Control;
use stratus_flist::build::{busybox_image, ImageBuilder, LayerEntry};
use stratus_state::{Command, Instance, InstanceState};
use stratus_store::ImportReport;
use stratus_testkit::{
    dir_bytes, instances, wait_storage_secret, wait_until, Cluster, Options, WAIT,
};
use stratus_types::{NodeId, NodeStatus, ADMIN_TENANT};

/// A cluster of one replica and three agents that store pieces and run
/// containers.
async fn cluster() -> Result<(Cluster, Control)> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    Ok((cluster, c))
}

async fn import(cluster: &Cluster, image: &ImageBuilder, name: &str) -> Result<ImportReport> {
    let dir = tempfile::tempdir()?;
    let tar = dir.path().join("image.tar");
    image.write_docker_save(&tar, &format!("{name}:latest"))?;
    Ok(cluster
        .store(0)?
        .import_image(ADMIN_TENANT, tar, Some(name))
        .await?)
}

async fn deploy(c: &Control, r: &ImportReport, yaml: &str) -> Result<String> {
    stratus_testkit::deploy(c, yaml, r.image.pinned().to_string()).await
}

/// Waits for the workload's single task to end; returns it and its output.
async fn finished(c: &Control, workload: &str) -> Result<(Instance, String)> {
    let i = wait_until("the task to end", Duration::from_secs(120), || async {
        instances(c, workload).into_iter().find(|i| {
            matches!(
                i.state,
                InstanceState::Completed | InstanceState::Failed { .. }
            )
        })
    })
    .await?;
    // Output is flushed before the exit report, but give the buffer a beat.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, out) = c.read_logs(&i.id, 0).await?;
    Ok((i, String::from_utf8_lossy(&out).into_owned()))
}

/// Bytes of chunks in the agents' caches: what the nodes fetched.
fn cached_bytes(cluster: &Cluster) -> u64 {
    (0..3)
        .map(|j| dir_bytes(&cluster.agent_dir(j).join("agent/oci/chunks")))
        .sum()
}

fn cache_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                cache_files(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
}

/// busybox plus a 48 MiB file of random bytes that the commands never read.
fn busybox_with_ballast() -> ImageBuilder {
    let mut big = vec![0u8; 48 << 20];
    rand::rngs::StdRng::seed_from_u64(6).fill_bytes(&mut big);
    busybox_image(Path::new("/bin/busybox")).layer(vec![LayerEntry::file(
        "/opt/ballast.bin",
        0o644,
        big,
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busybox_runs_prints_and_exits_fetching_only_what_it_reads() -> Result<()> {
    let (cluster, c) = cluster().await?;
    let image = import(&cluster, &busybox_with_ballast(), "busybox").await?;
    assert!(image.image.bytes > 48 << 20, "{image:?}");

    let id = deploy(
        &c,
        &image,
        "version: 1\nname: hello\nkind: task\nimage: { name: busybox }\n\
         args: [sh, -c, 'echo hello from $(hostname); echo oops >&2; exit 7']\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let (inst, out) = finished(&c, &id).await?;
    assert_eq!(inst.exit_code, Some(7), "{inst:?}\n{out}");
    assert!(out.contains("hello from hello\n"), "{out}");
    assert!(out.contains("oops\n"), "{out}");
    // Reported running only once the container existed: the start event
    // names its init's host pid.
    let started = inst.events.iter().find(|e| e.kind == "started");
    assert!(
        started.is_some_and(|e| e.message.contains("host pid")),
        "{:?}",
        inst.events
    );

    // Lazy start: the node fetched busybox's pages, not the ballast.
    let fetched = cached_bytes(&cluster);
    assert!(
        fetched > 0,
        "nothing was fetched: the start was not lazy, it was impossible"
    );
    assert!(
        fetched * 10 < image.image.bytes,
        "fetched {fetched} of {} image bytes",
        image.image.bytes
    );

    // A corrupted cached chunk is detected and fetched again: the container
    // reads busybox's true bytes.
    let mut files = Vec::new();
    for j in 0..3 {
        cache_files(&cluster.agent_dir(j).join("agent/oci/chunks"), &mut files);
    }
    for f in &files {
        let mut b = std::fs::read(f)?;
        if let Some(x) = b.get_mut(100) {
            *x ^= 0xff;
            std::fs::write(f, b)?;
        }
    }
    let want = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(std::fs::read("/bin/busybox")?))
    };
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: sum\nkind: task\nimage: { name: busybox }\n\
         args: [/bin/busybox, md5sum, /bin/busybox]\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let (inst, out) = finished(&c, &id).await?;
    assert_eq!(inst.state, InstanceState::Completed, "{inst:?}\n{out}");
    assert!(
        out.starts_with(&want),
        "container read {out:?}, busybox is {want}"
    );
    cluster.shutdown().await;
    Ok(())
}

/// nginx from Debian's package, with the shared libraries it links, as an
/// image of its own.
fn nginx_image() -> Result<ImageBuilder> {
    let nginx = Path::new("/usr/sbin/nginx");
    if !nginx.exists() {
        bail!("nginx is not installed: run scripts/setup-toolchain.sh (package nginx-light)");
    }
    let ldd = std::process::Command::new("ldd").arg(nginx).output()?;
    let mut entries = vec![
        LayerEntry::host_file("/usr/sbin/nginx", 0o755, nginx),
        LayerEntry::dir("/tmp", 0o1777),
        LayerEntry::dir("/var/log/nginx", 0o755),
        LayerEntry::file("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        LayerEntry::file("/etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n"),
        LayerEntry::file(
            "/etc/nginx/nginx.conf",
            0o644,
            "user nobody nogroup;\nworker_processes 1;\ndaemon off;\npid /tmp/nginx.pid;\nerror_log stderr warn;\n\
             events { worker_connections 64; }\n\
             http { access_log off; default_type text/plain;\n\
               client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fcgi;\n\
               uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;\n\
               server { listen 8080; root /srv/www; } }\n",
        ),
        LayerEntry::file("/srv/www/index.html", 0o644, "served by nginx from a Stratus flist\n"),
    ];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let real = std::fs::canonicalize(p).with_context(|| format!("resolving {p}"))?;
            entries.push(LayerEntry::host_file(p, 0o755, real));
        }
    }
    let config = stratus_flist::ImageConfig {
        entrypoint: vec!["/usr/sbin/nginx".into()],
        cmd: vec!["-c".into(), "/etc/nginx/nginx.conf".into()],
        exposed_ports: vec!["8080/tcp".into()],
        ..Default::default()
    };
    Ok(ImageBuilder::new().config(config).layer(entries))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_from_debian_serves_on_a_published_port() -> Result<()> {
    let (cluster, c) = cluster().await?;
    let image = import(&cluster, &nginx_image()?, "nginx").await?;
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: web\nkind: service\nimage: { name: nginx, ports: [{ container: 8080 }] }\n\
         resources: { memory_mb: 128 }\n",
    )
    .await?;
    // The agent reports where it published the port.
    let addr = wait_until("the published port", Duration::from_secs(120), || async {
        instances(&c, &id).iter().find_map(|i| {
            i.events.iter().find_map(|e| {
                let m = e.message.strip_prefix("port 8080 published on ")?;
                m.parse::<std::net::SocketAddr>().ok()
            })
        })
    })
    .await?;
    let url = format!("http://127.0.0.1:{}/index.html", addr.port());
    let body = wait_until("nginx to answer", Duration::from_secs(30), || async {
        match reqwest::get(&url).await {
            Ok(r) if r.status().is_success() => r.text().await.ok(),
            _ => None,
        }
    })
    .await?;
    assert_eq!(body, "served by nginx from a Stratus flist\n");
    c.write(Command::StopWorkload {
        id: id.clone(),
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    wait_until("the service to stop", WAIT, || async {
        instances(&c, &id)
            .iter()
            .all(|i| i.state == InstanceState::Stopped)
            .then_some(())
    })
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// Restarts agent `j` (same identity) with container images turned off.
async fn restart_without_containers(cluster: &mut Cluster, j: usize) -> Result<()> {
    cluster.stop_agent(j).await?;
    let mut cfg = cluster.cfg.agent(j, &cluster.join_token)?;
    if let Some(a) = cfg.agent.as_mut() {
        a.containers = false;
    }
    cluster.agents[j] = Some(stratus_node::start(cfg).await?);
    Ok(())
}

/// Waits until the three nodes are ready and only `oci` (if any) reports
/// the OCI runtime: a restarted node's new runtimes reach the state a moment
/// after it is back.
async fn wait_for_runtimes(c: &Control, oci: Option<&NodeId>) -> Result<()> {
    wait_until("the nodes to report their runtimes", WAIT, || async {
        c.state()
            .read(|s| {
                s.nodes.len() == 3
                    && s.nodes.values().all(|n| {
                        n.status == NodeStatus::Ready
                            && n.info.runtimes.contains(&stratus_types::Runtime::Oci)
                                == (Some(&n.info.id) == oci)
                    })
            })
            .then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_are_placed_only_on_nodes_that_run_containers() -> Result<()> {
    let (mut cluster, c) = cluster().await?;
    let image = import(
        &cluster,
        &busybox_image(Path::new("/bin/busybox")),
        "busybox",
    )
    .await?;
    for j in [1, 2] {
        restart_without_containers(&mut cluster, j).await?;
    }
    let oci_only = cluster.agent_id(0)?;
    wait_for_runtimes(&c, Some(&oci_only)).await?;

    // Three instances of a service: all on the one node that runs containers.
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: svc\nkind: service\ncount: 3\nimage: { name: busybox }\nargs: [sleep, '600']\n",
    )
    .await?;
    // Seven clusters share two cores in CI: starting three containers at
    // once may take a while. On a timeout, say what each instance went
    // through.
    let nodes = wait_until(
        "three running instances",
        Duration::from_secs(180),
        || async {
            let live: Vec<_> = instances(&c, &id)
                .into_iter()
                .filter(|i| i.state == InstanceState::Running)
                .map(|i| i.node)
                .collect();
            (live.len() == 3).then_some(live)
        },
    )
    .await
    .map_err(|e| {
        let seen: Vec<_> = instances(&c, &id)
            .into_iter()
            .map(|i| (i.id, i.node.short(), i.state, i.events))
            .collect();
        e.context(format!("instances: {seen:#?}"))
    })?;
    assert!(nodes.iter().all(|n| *n == oci_only), "{nodes:?}");

    // With no such node left, the workload waits and says why.
    restart_without_containers(&mut cluster, 0).await?;
    wait_for_runtimes(&c, None).await?;
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: nowhere\nkind: task\nimage: { name: busybox }\nargs: [true]\n",
    )
    .await?;
    let why = wait_until("the placement failure", Duration::from_secs(30), || async {
        c.blocked().get(&id).cloned()
    })
    .await?;
    assert!(why.contains("no container support"), "{why}");
    assert!(instances(&c, &id).is_empty());
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployed_container_is_isolated_and_held_to_its_memory_limit() -> Result<()> {
    let (cluster, c) = cluster().await?;
    let image = import(
        &cluster,
        &busybox_image(Path::new("/bin/busybox")),
        "busybox",
    )
    .await?;

    // A file of the host, and the host's processes, are out of sight.
    let host = tempfile::tempdir()?;
    let secret = host.path().join("host-secret");
    std::fs::write(&secret, "host only")?;
    let yaml = format!(
        "version: 1\nname: peek\nkind: task\nimage: {{ name: busybox }}\n\
         args: [sh, -c, 'cat {} || echo no host file; ls /proc | grep -c \"^[0-9]\"; cat /proc/1/cmdline; echo']\n\
         restart: {{ attempts: 0 }}\n",
        secret.display()
    );
    let id = deploy(&c, &image, &yaml).await?;
    let (inst, out) = finished(&c, &id).await?;
    assert_eq!(inst.state, InstanceState::Completed, "{inst:?}\n{out}");
    assert!(out.contains("no host file"), "{out}");
    assert!(!out.contains("host only"), "{out}");
    let procs: usize = out
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no process count in {out:?}"))?;
    assert!(procs <= 4, "the container sees {procs} processes:\n{out}");
    // Its pid 1 is its own shell, not the host's init.
    assert!(out.contains("sh\0-c") || out.contains("sh-c"), "{out:?}");

    // 32 MiB of memory: a command that holds 256 MiB is stopped. `dd` fills
    // its one 256 MiB buffer inside a single read(2), so the kernel meets
    // the limit without running the container's code in between: a loop in
    // user space (`tail`) instead makes the kernel evict and re-read the
    // busybox pages it executes (through FUSE) at every step, and the OOM
    // kill came after 2 s to over 120 s, depending on the machine's load.
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: hog\nkind: task\nimage: { name: busybox }\n\
         args: [sh, -c, 'dd if=/dev/zero of=/dev/null bs=256M count=1 && echo survived']\n\
         resources: { memory_mb: 32 }\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let (inst, out) = finished(&c, &id).await?;
    assert!(!out.contains("survived"), "{out}");
    match &inst.state {
        InstanceState::Failed { reason, .. } => {
            assert!(reason.contains("memory"), "{reason}")
        }
        other => panic!("the hog ended {other:?}:\n{out}"),
    }
    cluster.shutdown().await;
    Ok(())
}

/// The attacker asks for host port 80 on a cluster whose lenders allow only
/// the default 20000-29999: the workload is not placed and says why (what
/// `stratus ps` shows); a port inside the range runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_ports_outside_the_lenders_range_are_not_placed() -> Result<()> {
    let (cluster, c) = cluster().await?;
    let image = import(
        &cluster,
        &busybox_image(Path::new("/bin/busybox")),
        "busybox",
    )
    .await?;
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: web80\nkind: service\n\
         image: { name: busybox, ports: [{ container: 80, host: 80 }] }\nargs: [sleep, '600']\n",
    )
    .await?;
    let why = wait_until("the placement failure", Duration::from_secs(30), || async {
        c.blocked().get(&id).cloned()
    })
    .await?;
    assert!(
        why.contains("host port outside the node's allowed ports"),
        "{why}"
    );
    assert!(instances(&c, &id).is_empty());

    let id = deploy(
        &c,
        &image,
        "version: 1\nname: web20080\nkind: service\n\
         image: { name: busybox, ports: [{ container: 80, host: 20080 }] }\nargs: [sleep, '600']\n",
    )
    .await?;
    wait_until("a running instance", Duration::from_secs(60), || async {
        instances(&c, &id)
            .into_iter()
            .any(|i| i.state == InstanceState::Running)
            .then_some(())
    })
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// The attacker fills the lender's disk from a container: what it writes in
/// its writable layer and its volumes counts together against
/// `resources.disk_mb`, and the container is stopped with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_filling_the_lenders_disk_is_stopped() -> Result<()> {
    let (cluster, c) = cluster().await?;
    let image = import(
        &cluster,
        &busybox_image(Path::new("/bin/busybox")),
        "busybox",
    )
    .await?;
    // 10 MiB in the layer and 10 MiB in a volume: each under 16 MiB, not
    // both; then it would go on writing for a minute.
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: filler\nkind: task\n\
         image: { name: busybox, volumes: [{ name: scratch, path: /scratch }] }\n\
         args: [sh, -c, 'dd if=/dev/zero of=/layer bs=1M count=10 && \
         dd if=/dev/zero of=/scratch/vol bs=1M count=10 && sleep 60 && echo survived']\n\
         resources: { disk_mb: 16 }\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let (inst, out) = finished(&c, &id).await?;
    assert!(!out.contains("survived"), "{out}");
    match &inst.state {
        InstanceState::Failed { reason, .. } => {
            assert!(
                reason.contains("writable layer and volumes hold") && reason.contains("16 MiB"),
                "{reason}"
            )
        }
        other => panic!("the filler ended {other:?}:\n{out}"),
    }
    cluster.shutdown().await;
    Ok(())
}

/// The admin publishes the image app `admin/forecast` (prints `forecast:
/// sunny`, 250 per task); rita, with 1,000, will run it. Returns the
/// image, rita's spec that runs it, and the time.
async fn forecast_app(
    cluster: &Cluster,
    c: &Control,
) -> Result<(ImportReport, stratus_spec::WorkloadSpec, u64)> {
    use stratus_market::Amount;
    use stratus_state::catalog::CatalogCommand;
    let app = busybox_image(Path::new("/bin/busybox")).config(stratus_flist::ImageConfig {
        entrypoint: vec!["sh".into(), "-c".into(), "echo forecast: sunny".into()],
        env: vec!["PATH=/bin".into()],
        ..stratus_flist::ImageConfig::default()
    });
    let image = import(cluster, &app, "forecaster").await?;
    let now = stratus_control::now_ms();
    stratus_testkit::funded_tenant(c, "rita", 1_000).await?;
    c.write(Command::Catalog(CatalogCommand::PublishApp {
        tenant: ADMIN_TENANT.into(),
        name: "forecast".into(),
        module: image.image.pinned().to_string(),
        price: Amount(250),
        now_ms: now,
    }))
    .await?;
    let spec = stratus_spec::parse(
        "version: 1\nname: ask\nkind: task\nimage: { name: app }\nrestart: { attempts: 0 }\n",
        stratus_spec::Format::Yaml,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((image, spec, now))
}

/// A published image app (issue 15, item 5): another tenant runs it as
/// published; the node fetches the image from its owner's store (the
/// requester has no such image), the owner is paid its price per task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_image_runs_for_another_tenant_from_its_owners_store() -> Result<()> {
    use stratus_market::Amount;
    use stratus_state::catalog::Uses;
    let (cluster, c) = cluster().await?;
    let (image, spec, now) = forecast_app(&cluster, &c).await?;
    c.write(Command::DeployUsing {
        deploy: Box::new(Command::DeployWorkload {
            tenant: "rita".into(),
            spec: Box::new(spec),
            module: image.image.pinned().to_string(),
            now_ms: now,
        }),
        uses: Uses {
            app: Some(format!("{ADMIN_TENANT}/forecast")),
            dataset: None,
        },
    })
    .await?;
    let (inst, out) = finished(&c, "rita/ask").await?;
    assert_eq!(inst.state, InstanceState::Completed, "{inst:?}\n{out}");
    assert_eq!(out, "forecast: sunny\n");
    wait_until("the deal to settle", WAIT, || async {
        c.state().read(|s| s.deals.is_empty()).then_some(())
    })
    .await?;
    assert_eq!(
        c.state().read(|s| s.account("rita").balance),
        Amount(1_000 - 250)
    );
    cluster.shutdown().await;
    Ok(())
}

/// A published image its owner declares deterministic runs verified
/// (issue 16, item 5): replicas on nodes of distinct lenders agree on its
/// output. Without the declaration, `trust > 1` for a container is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_app_declared_deterministic_runs_verified() -> Result<()> {
    use stratus_market::Order;
    use stratus_state::catalog::{CatalogCommand, Uses};
    use stratus_state::trusted::Outcome;
    let (cluster, c) = cluster().await?;
    let (image, spec, now) = forecast_app(&cluster, &c).await?;
    let verified = Command::DeployTrusted {
        deploy: Box::new(Command::DeployUsing {
            deploy: Box::new(Command::DeployOrdered {
                deploy: Box::new(Command::DeployWorkload {
                    tenant: "rita".into(),
                    spec: Box::new(spec),
                    module: image.image.pinned().to_string(),
                    now_ms: now,
                }),
                order: Order::default(),
            }),
            uses: Uses {
                app: Some(format!("{ADMIN_TENANT}/forecast")),
                dataset: None,
            },
        }),
        trust: 3,
    };
    let refused = c.write(verified.clone()).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not deterministic")),
        "{refused:?}"
    );
    c.write(Command::Catalog(CatalogCommand::DeclareDeterministic {
        tenant: ADMIN_TENANT.into(),
        name: "forecast".into(),
    }))
    .await?;
    c.write(verified).await?;
    let run = wait_until("the verdict", Duration::from_secs(120), || async {
        c.state().read(|s| {
            s.trusted_run("rita/ask")
                .filter(|r| r.outcome.is_some())
                .cloned()
        })
    })
    .await?;
    match &run.outcome {
        Some(Outcome::Agreed {
            result, winners, ..
        }) => {
            assert_eq!(
                result.output,
                *blake3::hash(b"forecast: sunny\n").as_bytes()
            );
            assert!(winners.len() >= 2, "{run:?}");
        }
        other => bail!("no agreement: {other:?}"),
    }
    let owners: BTreeSet<&str> = run.replicas.values().map(|r| r.owner.as_str()).collect();
    assert_eq!(owners.len(), run.replicas.len(), "{run:?}");
    cluster.shutdown().await;
    Ok(())
}
