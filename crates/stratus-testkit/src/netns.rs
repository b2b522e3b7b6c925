//! A network lab for tests: network namespaces wired as a public segment
//! and homes behind NATs, all traffic inside namespaces the lab creates.
//!
//! ```text
//!   pub (10.77.0.1) ──┐
//!                     ├── wan: bridge ──┬── router 0 (10.77.0.10) ─MASQUERADE─ home 0 (192.168.1.2)
//!                     │                 └── router 1 (10.77.0.11) ─MASQUERADE─ home 1 (192.168.2.2)
//! ```
//!
//! A home reaches the public segment through its router, which masquerades
//! it and drops every connection started from the WAN side; nothing on the
//! public segment has a route to a home: exactly the condition of a laptop
//! behind a home router. Programs run inside a namespace through
//! [`in_namespace`] (`ip netns exec`).
//!
//! Every namespace is named after the test process's pid, and dropping the
//! lab deletes them (their interfaces go with them), also when the test
//! fails; a lab left behind by a killed test process is deleted by the next
//! lab made on the machine. Needs root, `ip` (iproute2) and `iptables`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

/// Prefix of every namespace a lab makes.
const PREFIX: &str = "stlab";
/// The public segment's address of the `pub` namespace.
pub const PUBLIC_ADDR: &str = "10.77.0.1";

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?} (are iproute2 and iptables installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A public segment and `homes` homes, each behind its own NAT router.
pub struct NatLab {
    tag: String,
    namespaces: Vec<String>,
    homes: usize,
    /// Homes whose router maps every destination to another port.
    symmetric: Vec<usize>,
}

impl NatLab {
    /// Builds the lab (deleting labs of test processes that are gone).
    pub fn new(homes: usize) -> Result<NatLab> {
        NatLab::with_symmetric(homes, &[])
    }

    /// Builds the lab with the routers of the homes in `symmetric`
    /// mapping each outgoing flow to a random port (`MASQUERADE
    /// --random-fully`): a peer cannot reach such a home at the address a
    /// replica saw it at, so hole punching to it fails, as behind many
    /// carrier-grade and corporate NATs. The other routers keep a flow's
    /// source port where they can (endpoint-independent mapping, what
    /// Linux and most home routers do).
    pub fn with_symmetric(homes: usize, symmetric: &[usize]) -> Result<NatLab> {
        if homes > 200 {
            bail!("at most 200 homes");
        }
        sweep_stale();
        static LABS: AtomicU32 = AtomicU32::new(0);
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{PREFIX}{}x{n}", std::process::id());
        let mut lab = NatLab {
            tag,
            namespaces: Vec::new(),
            homes,
            symmetric: symmetric.to_vec(),
        };
        lab.build().context("building the network lab")?;
        Ok(lab)
    }

    /// Name of the public namespace (the replicas' segment).
    pub fn public(&self) -> String {
        format!("{}-pub", self.tag)
    }

    /// Name of home `i`'s namespace.
    pub fn home(&self, i: usize) -> String {
        format!("{}-h{i}", self.tag)
    }

    /// Home `i`'s own (private) address.
    pub fn home_addr(&self, i: usize) -> String {
        format!("192.168.{}.2", i + 1)
    }

    /// Home `i`'s public address: its router's WAN address.
    pub fn home_public_addr(&self, i: usize) -> String {
        format!("10.77.0.{}", 10 + i)
    }

    fn add_ns(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    fn build(&mut self) -> Result<()> {
        let wan = format!("{}-wan", self.tag);
        let public = self.public();
        self.add_ns(&wan)?;
        ip(&["-n", &wan, "link", "add", "name", "br0", "type", "bridge"])?;
        ip(&["-n", &wan, "link", "set", "br0", "up"])?;
        self.add_ns(&public)?;
        plug(&wan, &public, "pub", &format!("{PUBLIC_ADDR}/24"))?;
        for i in 0..self.homes {
            let router = format!("{}-r{i}", self.tag);
            let home = self.home(i);
            self.add_ns(&router)?;
            self.add_ns(&home)?;
            plug(
                &wan,
                &router,
                &format!("r{i}"),
                &format!("{}/24", self.home_public_addr(i)),
            )?;
            // The home's link to its router.
            ip(&[
                "-n", &router, "link", "add", "name", "lan", "type", "veth", "peer", "name",
                "eth0", "netns", &home,
            ])?;
            let lan = format!("192.168.{}", i + 1);
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{lan}.1/24"),
                "dev",
                "lan",
            ])?;
            ip(&["-n", &router, "link", "set", "lan", "up"])?;
            ip(&[
                "-n",
                &home,
                "addr",
                "add",
                &format!("{lan}.2/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &home, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &home,
                "route",
                "add",
                "default",
                "via",
                &format!("{lan}.1"),
            ])?;
            // The router: forwards, masquerades the home, and lets nothing
            // in that the home did not start.
            let in_router = |args: &[&str]| {
                run(Command::new("ip")
                    .args(["netns", "exec", &router])
                    .args(args))
            };
            in_router(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            let mut masquerade = vec![
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "wan",
                "-j",
                "MASQUERADE",
            ];
            if self.symmetric.contains(&i) {
                masquerade.push("--random-fully");
            }
            in_router(&masquerade)?;
            // Nothing unasked crosses the router (FORWARD) or reaches it
            // (INPUT, as on a home router's firewall: an unanswered packet
            // leaves no connection-tracking entry behind).
            for chain in ["INPUT", "FORWARD"] {
                in_router(&[
                    "iptables",
                    "-A",
                    chain,
                    "-i",
                    "wan",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                ])?;
                in_router(&["iptables", "-A", chain, "-i", "wan", "-j", "DROP"])?;
            }
        }
        Ok(())
    }
}

/// `cmd` run inside network namespace `ns` (`nsenter`, which then execs
/// the program: killing the child kills the program): its program,
/// arguments, environment and working folder. Only the network namespace
/// changes (`ip netns exec` would also remount `/sys`, hiding the cgroup
/// file system a node running containers needs).
pub fn in_namespace(ns: &str, cmd: &Command) -> Command {
    let mut wrapped = Command::new("nsenter");
    wrapped
        .arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Connects namespace `ns` to the bridge in `wan` with a veth pair (`wan`
/// in `ns`, `peer` on the bridge) and gives its end `cidr`.
fn plug(wan: &str, ns: &str, peer: &str, cidr: &str) -> Result<()> {
    ip(&[
        "-n", ns, "link", "add", "name", "wan", "type", "veth", "peer", "name", peer, "netns", wan,
    ])?;
    ip(&["-n", wan, "link", "set", peer, "master", "br0"])?;
    ip(&["-n", wan, "link", "set", peer, "up"])?;
    ip(&["-n", ns, "addr", "add", cidr, "dev", "wan"])?;
    ip(&["-n", ns, "link", "set", "wan", "up"])
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("network lab: {e}");
            }
        }
    }
}

/// Deletes the namespaces of labs whose test process is gone.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('x').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
