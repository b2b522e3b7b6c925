//! Workloads on an in-process cluster: placement, rescheduling after a node
//! is lost, draining, and edge autonomy while the whole control plane is down.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use stratus_control::Control;
use stratus_state::{Command, Desired, Instance, InstanceState};
use stratus_testkit::{instances, wait_until, Cluster, Options, WAIT};
use stratus_types::{NodeId, NodeStatus};

const SERVICE: &str = include_str!("../../../examples/wasm/service.wat");
const HELLO: &str = include_str!("../../../examples/wasm/hello.wat");

async fn deploy(c: &Control, yaml: &str, module: &str) -> Result<String> {
    let bytes = module.as_bytes().to_vec();
    let hash = stratus_testkit::put_module(c, stratus_types::ADMIN_TENANT, bytes).await?;
    stratus_testkit::deploy(c, yaml, hash).await
}

fn running(c: &Control, workload: &str) -> Vec<Instance> {
    instances(c, workload)
        .into_iter()
        .filter(|i| i.desired == Desired::Run && i.state == InstanceState::Running)
        .collect()
}

fn service(count: u32, wait_secs: u64) -> String {
    format!(
        "version: 1\nname: svc\nkind: service\ncount: {count}\nwasm: {{ module: service.wat }}\nargs: [\"100\"]\n\
         resources: {{ cpu_millis: 100, memory_mb: 16 }}\noutput: true\ndisconnect: {{ wait_secs: {wait_secs}, replace: true }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_complete_with_their_output_and_exit_code() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 2)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    let id = deploy(&c, "version: 1\nname: hi\nkind: task\ncount: 3\nwasm: { module: hello.wat }\nargs: [\"tests\"]\n", HELLO).await?;
    wait_until("3 completed tasks", WAIT, || async {
        let done = instances(&c, &id)
            .iter()
            .filter(|i| i.state == InstanceState::Completed)
            .count();
        (done == 3).then_some(())
    })
    .await?;
    for i in instances(&c, &id) {
        assert_eq!(i.exit_code, Some(0));
        let kinds: Vec<_> = i.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["scheduled", "started", "exited"], "{}", i.id);
        let (_, out) = c.read_logs(&i.id, 0).await?;
        assert_eq!(String::from_utf8_lossy(&out), "Hello, tests!\n");
    }
    // A failing task reports its code and is retried `restart.attempts` times.
    let failing = "(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32))) (memory (export \"memory\") 1) (func (export \"_start\") (call $exit (i32.const 3))))";
    let id = deploy(&c, "version: 1\nname: bad\nkind: task\nwasm: { module: bad.wat }\nrestart: { attempts: 2, delay_ms: 10, max_delay_ms: 10 }\n", failing).await?;
    wait_until("3 failed attempts", WAIT, || async {
        let failed = instances(&c, &id)
            .iter()
            .filter(|i| matches!(i.state, InstanceState::Failed { code: 3, .. }))
            .count();
        (failed == 3).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(instances(&c, &id).len(), 3, "exactly 1 try + 2 retries");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_on_a_lost_node_runs_elsewhere() -> Result<()> {
    let mut cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    let id = deploy(&c, &service(2, 0), SERVICE).await?;
    wait_until("2 running replicas", WAIT, || async {
        (running(&c, &id).len() == 2).then_some(())
    })
    .await?;
    let nodes: BTreeSet<NodeId> = running(&c, &id).iter().map(|i| i.node).collect();
    assert_eq!(nodes.len(), 2, "replicas on distinct nodes");
    // Kill the agent of one replica's node.
    let victim = *nodes
        .iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no node"))?;
    let j = (0..3)
        .find(|j| cluster.agent_id(*j).ok() == Some(victim))
        .ok_or_else(|| anyhow::anyhow!("agent"))?;
    cluster.stop_agent(j).await?;
    wait_until("a replacement on another node", WAIT, || async {
        let r = running(&c, &id);
        (r.len() == 2 && r.iter().all(|i| i.node != victim)).then_some(())
    })
    .await?;
    let lost: Vec<Instance> = instances(&c, &id)
        .into_iter()
        .filter(|i| i.state == InstanceState::Lost)
        .collect();
    assert_eq!(lost.len(), 1);
    assert!(instances(&c, &id)
        .iter()
        .any(|i| i.replaces.as_deref() == Some(lost[0].id.as_str())));
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_node_ends_empty() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    let id = deploy(&c, &service(3, 0), SERVICE).await?;
    wait_until("3 running replicas", WAIT, || async {
        (running(&c, &id).len() == 3).then_some(())
    })
    .await?;
    // Room elsewhere: each node takes more than one replica.
    let node = cluster.agent_id(0)?;
    c.write(Command::SetDrain { node, drain: true }).await?;
    wait_until(
        "the drained node empty and 3 replicas elsewhere",
        WAIT,
        || async {
            let on_node = instances(&c, &id)
                .iter()
                .filter(|i| i.node == node && !i.state.is_terminal())
                .count();
            let r = running(&c, &id);
            (on_node == 0 && r.len() == 3 && r.iter().all(|i| i.node != node)).then_some(())
        },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// With every control replica stopped, a service keeps running (and its
/// output keeps growing); when they return, the agent reconciles without
/// restarting healthy work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_keep_running_without_the_control_plane() -> Result<()> {
    let mut opts = Options::new(1, 1);
    opts.node_lost_after = Duration::from_secs(30);
    let mut cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let id = deploy(&c, &service(1, 60), SERVICE).await?;
    let inst = wait_until("a running replica", WAIT, || async {
        running(&c, &id).into_iter().next()
    })
    .await?;
    let ticks = cluster
        .cfg
        .data_dir
        .join("node-0/agent/instances")
        .join(&inst.id)
        .join("output/ticks.log");
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_until("output", WAIT, || async {
        (lines(&ticks) > 0).then_some(())
    })
    .await?;

    drop(c);
    cluster.stop_replica(0).await?;
    let before = lines(&ticks);
    wait_until(
        "output to keep growing with no control plane",
        WAIT,
        || async { (lines(&ticks) >= before + 5).then_some(()) },
    )
    .await?;

    cluster.start_replica(0).await?;
    let c = cluster.control(0)?;
    wait_until("the node ready again", WAIT, || async {
        let ready = c
            .state()
            .read(|s| s.nodes.values().all(|n| n.status == NodeStatus::Ready));
        ready.then_some(())
    })
    .await?;
    // Same instance, still running, never restarted, no replacement.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = instances(&c, &id);
    assert_eq!(all.len(), 1, "no replacement was placed: {all:?}");
    assert_eq!(all[0].id, inst.id);
    assert_eq!(all[0].state, InstanceState::Running);
    assert_eq!(all[0].restarts, 0);
    let grown = lines(&ticks);
    wait_until("output still growing", WAIT, || async {
        (lines(&ticks) > grown).then_some(())
    })
    .await?;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemons_run_once_on_every_matching_node() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    let everywhere = deploy(&c, "version: 1\nname: everywhere\nkind: daemon\nwasm: { module: s.wat }\nargs: [\"100\"]\nresources: { memory_mb: 16 }\n", SERVICE).await?;
    let one_site = deploy(
        &c,
        "version: 1\nname: siteone\nkind: daemon\nwasm: { module: s.wat }\nargs: [\"100\"]\nresources: { memory_mb: 16 }\nconstraints: { site: site-1 }\n",
        SERVICE,
    )
    .await?;
    wait_until("one daemon instance per node", WAIT, || async {
        let nodes: BTreeSet<NodeId> = running(&c, &everywhere).iter().map(|i| i.node).collect();
        (nodes.len() == 3 && running(&c, &everywhere).len() == 3).then_some(())
    })
    .await?;
    let site1 = cluster.agent_id(1)?;
    wait_until(
        "the site-constrained daemon on site-1 only",
        WAIT,
        || async {
            let r = running(&c, &one_site);
            (r.len() == 1 && r[0].node == site1).then_some(())
        },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_over_its_cpu_budget_is_stopped() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 1)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let spin = include_str!("../../../examples/wasm/loop.wat");
    let id = deploy(&c, "version: 1\nname: spin\nkind: task\nwasm: { module: loop.wat }\nresources: { cpu_secs: 1 }\nrestart: { attempts: 0 }\n", spin).await?;
    let failed = wait_until("the spinning task stopped", WAIT, || async {
        instances(&c, &id)
            .into_iter()
            .find(|i| matches!(i.state, InstanceState::Failed { .. }))
    })
    .await?;
    match &failed.state {
        InstanceState::Failed { reason, .. } => assert!(reason.contains("CPU"), "{reason}"),
        other => panic!("{other:?}"),
    }
    cluster.shutdown().await;
    Ok(())
}

/// A service update rolls to the new version; an update whose instances fail
/// is reverted to the previous spec automatically.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_and_automatic_revert() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    let spec = |args: &str| {
        format!(
            "version: 1\nname: web\nkind: service\ncount: 2\nwasm: {{ module: m.wat }}\nargs: [\"{args}\"]\nresources: {{ memory_mb: 16 }}\n\
             restart: {{ attempts: 1, delay_ms: 10, max_delay_ms: 10 }}\nupdate: {{ max_parallel: 1, healthy_after_secs: 1, auto_revert: true, deadline_secs: 30 }}\n"
        )
    };
    let id = deploy(&c, &spec("100"), SERVICE).await?;
    let gen_of = |c: &Control| {
        c.state().read(|s| {
            s.workloads
                .get(&id)
                .map(|w| (w.generation, w.spec.args.clone()))
        })
    };
    wait_until("generation 1 running", WAIT, || async {
        (running(&c, &id).len() == 2).then_some(())
    })
    .await?;

    // Update: a new argument.
    deploy(&c, &spec("50"), SERVICE).await?;
    wait_until(
        "generation 2 rolled out and generation 1 retired",
        WAIT,
        || async {
            let r = running(&c, &id);
            let old_live = instances(&c, &id)
                .iter()
                .any(|i| i.generation == 1 && !i.state.is_terminal());
            (r.len() == 2 && r.iter().all(|i| i.generation == 2) && !old_live).then_some(())
        },
    )
    .await?;

    // A broken update: the module exits 1 at once, so its instances fail.
    let broken = "(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32))) (memory (export \"memory\") 1) (func (export \"_start\") (call $exit (i32.const 1))))";
    deploy(&c, &spec("25"), broken).await?;
    wait_until(
        "the broken update reverted to the previous spec",
        WAIT,
        || async {
            let (generation, args) = gen_of(&c)?;
            let r = running(&c, &id);
            (generation == 4
                && args == ["50"]
                && r.len() == 2
                && r.iter().all(|i| i.generation == 4))
            .then_some(())
        },
    )
    .await?;
    let reverted = instances(&c, &id)
        .iter()
        .any(|i| i.generation == 3 && i.events.iter().any(|e| e.kind == "reverted"));
    assert!(
        reverted,
        "the failed generation's instances record the revert"
    );
    cluster.shutdown().await;
    Ok(())
}
