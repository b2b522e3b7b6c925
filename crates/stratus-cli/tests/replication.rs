//! Replication under failure: three `stratus server` processes, a write
//! workload, and a SIGKILL of the leader in the middle of it. No write that
//! was acknowledged may be lost, and the killed replica catches up on restart.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cli, rt, wait_until, Api, Server};
use futures::StreamExt;

/// Keys written by the workload.
const WRITES: usize = 1000;
/// Writes in flight at once.
const CONCURRENCY: usize = 32;
/// Acknowledged writes before the leader is killed.
const KILL_AFTER: usize = 200;

/// Shared state of the write workload.
struct Load {
    apis: Vec<Api>,
    nonce: u128,
    next: AtomicUsize,
    acked: Mutex<BTreeMap<String, String>>,
    ack_count: AtomicUsize,
    failed_attempts: AtomicUsize,
    given_up: AtomicUsize,
}

fn key(i: usize) -> String {
    format!("load-{i:04}")
}

/// Takes keys from the shared counter and writes each one, round-robin over
/// the replicas; a failed attempt is retried on the next replica. Only a 200
/// counts as acknowledged.
async fn worker(load: Arc<Load>, deadline: Instant) {
    loop {
        let i = load.next.fetch_add(1, Ordering::SeqCst);
        if i >= WRITES {
            return;
        }
        let key = key(i);
        let value = format!("value-{i}-{:x}", load.nonce);
        let mut attempt = 0usize;
        loop {
            let api = &load.apis[(i + attempt) % load.apis.len()];
            match api.put_var(&key, &value).await {
                Ok(_) => {
                    load.acked
                        .lock()
                        .expect("acked lock")
                        .insert(key.clone(), value.clone());
                    load.ack_count.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(_) => {
                    load.failed_attempts.fetch_add(1, Ordering::SeqCst);
                }
            }
            attempt += 1;
            if attempt >= 40 || Instant::now() >= deadline {
                load.given_up.fetch_add(1, Ordering::SeqCst);
                break;
            }
            let pause = 50 * u64::try_from(attempt.min(10)).expect("small");
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

/// Reads every acknowledged key through `api`, one GET each.
fn assert_all_readable(who: &str, api: &Api, acked: &BTreeMap<String, String>) {
    let wrong: Vec<String> = rt().block_on(async {
        futures::stream::iter(acked.iter())
            .map(|(k, v)| async move {
                match api.get_var(k).await {
                    Ok(Some(got)) if &got == v => None,
                    other => Some(format!("{k}: expected {v:?}, got {other:?}")),
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|x| async move { x })
            .collect()
            .await
    });
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged keys do not read back through {who}: {:?}",
        wrong.len(),
        acked.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// Waits until `api`'s replica has applied every acknowledged key.
fn wait_converged(who: &str, api: &Api, acked: &BTreeMap<String, String>) {
    wait_until(
        &format!("{who} to hold every acknowledged key"),
        Duration::from_secs(60),
        || {
            let have = api.vars()?;
            let missing: Vec<&String> = acked
                .iter()
                .filter(|(k, v)| have.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} keys missing or different, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                ))
            }
        },
    );
}

/// The leader all of `servers` agree on, if it is one of them and says so.
fn agreed_leader(servers: &[&Server]) -> Result<String, String> {
    let mut leaders = Vec::new();
    for s in servers {
        let h = s.api(None).health()?;
        leaders.push((s.id.clone(), h["role"].clone(), h["leader"].clone()));
    }
    let first = leaders[0].2.as_str().map(str::to_string);
    let Some(leader) = first else {
        return Err(format!("no leader yet: {leaders:?}"));
    };
    let agree = leaders.iter().all(|(_, _, l)| l.as_str() == Some(&leader));
    let leads = leaders
        .iter()
        .any(|(id, role, _)| *id == leader && role.as_str() == Some("leader"));
    if agree && leads {
        Ok(leader)
    } else {
        Err(format!("replicas disagree: {leaders:?}"))
    }
}

#[test]
fn leader_kill_under_load_loses_no_acknowledged_write() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let root = tmp.path();

    let a = Server::start("a", root, &[]);
    let token = a.wait_bootstrapped();
    // The new replicas take Raft messages only from `a` and its members.
    let join = format!("{}@{}", a.id, a.quic_addr());
    let b = Server::start("b", root, &["--no-bootstrap", "--join", &join]);
    let c = Server::start("c", root, &["--no-bootstrap", "--join", &join]);
    for r in [&b, &c] {
        cli(&[
            "replicas",
            "add",
            &r.id,
            &r.quic_addr(),
            "--api",
            &a.api_url(),
            "--token",
            &token,
        ])
        .success("stratus replicas add");
    }
    let mut servers = [a, b, c];
    let first_leader = wait_until(
        "the three replicas to agree on a leader",
        Duration::from_secs(60),
        || agreed_leader(&servers.iter().collect::<Vec<_>>()),
    );
    let status = cli(&[
        "status",
        "--json",
        "--api",
        &servers[1].api_url(),
        "--token",
        &token,
    ])
    .success("stratus status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    let voters = status["replicas"]
        .as_array()
        .expect("replicas array")
        .iter()
        .filter(|r| r["voter"] == true)
        .count();
    assert_eq!(voters, 3, "three voting replicas: {status}");
    assert_eq!(status["leader"].as_str(), Some(first_leader.as_str()));

    let load = Arc::new(Load {
        apis: servers.iter().map(|s| s.api(Some(&token))).collect(),
        nonce: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos(),
        next: AtomicUsize::new(0),
        acked: Mutex::new(BTreeMap::new()),
        ack_count: AtomicUsize::new(0),
        failed_attempts: AtomicUsize::new(0),
        given_up: AtomicUsize::new(0),
    });

    let started = Instant::now();
    let (killed, acked_at_kill) = rt().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| tokio::spawn(worker(load.clone(), deadline)))
            .collect();
        // Kill the leader once enough writes are acknowledged.
        loop {
            if load.ack_count.load(Ordering::SeqCst) >= KILL_AFTER {
                break;
            }
            assert!(
                workers.iter().any(|w| !w.is_finished()),
                "the workload ended before {KILL_AFTER} writes were acknowledged ({} were)",
                load.ack_count.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut leader = None;
        for api in &load.apis {
            if let Ok((200, h)) = api.get_async("/v1/health").await {
                if let Some(l) = h["leader"].as_str() {
                    leader = Some(l.to_string());
                    break;
                }
            }
        }
        let leader = leader.expect("a replica names the leader");
        let idx = servers
            .iter()
            .position(|s| s.id == leader)
            .expect("the leader is one of the three processes");
        let acked_at_kill = load.ack_count.load(Ordering::SeqCst);
        servers[idx].proc.kill();
        for w in workers {
            w.await.expect("worker task");
        }
        (idx, acked_at_kill)
    });
    let acked = load.acked.lock().expect("acked lock").clone();
    eprintln!(
        "workload: {} acknowledged ({} before the kill), {} failed attempts, {} keys given up, {:?}",
        acked.len(),
        acked_at_kill,
        load.failed_attempts.load(Ordering::SeqCst),
        load.given_up.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert!(
        acked.len() >= 900,
        "only {} of {WRITES} writes were acknowledged",
        acked.len()
    );
    assert!(
        acked.len() - acked_at_kill >= 500,
        "the workload must go on after the kill: {} acknowledged before, {} in all",
        acked_at_kill,
        acked.len()
    );

    // A new leader among the survivors, and every acknowledged write on both.
    let survivors: Vec<&Server> = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != killed)
        .map(|(_, s)| s)
        .collect();
    let new_leader = wait_until(
        "a new leader among the survivors",
        Duration::from_secs(60),
        || agreed_leader(&survivors),
    );
    assert_ne!(
        new_leader, servers[killed].id,
        "the killed replica cannot lead"
    );
    for s in &survivors {
        let api = s.api(Some(&token));
        wait_converged(&s.proc.name, &api, &acked);
        assert_all_readable(&s.proc.name, &api, &acked);
    }

    // The killed replica comes back on the same data and catches up.
    servers[killed].restart();
    let back = &servers[killed];
    let api = back.api(Some(&token));
    wait_until(
        "the restarted replica to follow the new leader",
        Duration::from_secs(60),
        || {
            let h = api.health()?;
            if h["role"] == "follower" && h["leader"].as_str().is_some() {
                Ok(())
            } else {
                Err(format!("health: {h}"))
            }
        },
    );
    wait_converged(&back.proc.name, &api, &acked);
    assert_all_readable(&back.proc.name, &api, &acked);
    eprintln!("total: {:?}", started.elapsed());
}
