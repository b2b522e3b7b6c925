//! Issue 13's acceptance through the real binary: on `stratus dev`, a second
//! tenant tries every field of a spec that could reach a host file, another
//! tenant's data or a secret of the cloud, and gets none of them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{wait_until, CliOutput, Dev};
use serde_json::Value;

const SECRET: &str = "the-operators-secret-object";

/// `mallory`'s view of the cloud: every command with her token.
struct Mallory<'a> {
    dev: &'a Dev,
    token: String,
}

impl Mallory<'_> {
    fn cli(&self, args: &[&str]) -> CliOutput {
        self.dev.cli_env(args, &[("STRATUS_TOKEN", &self.token)])
    }

    /// Deploys `yaml` (written beside the cloud's folder).
    fn deploy(&self, name: &str, yaml: &str) -> CliOutput {
        let path = self.dev.dir.with_file_name(format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("write the spec");
        self.cli(&["deploy", &path.to_string_lossy()])
    }

    /// Waits until `name`'s single instance ended; returns its state (JSON).
    fn ended(&self, name: &str) -> Value {
        let workload = format!("mallory/{name}");
        wait_until(
            &format!("{workload} to end"),
            Duration::from_secs(90),
            || {
                let out = self.cli(&["--json", "ps", "--all"]);
                let list: Vec<Value> =
                    serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
                list.into_iter()
                    .find(|i| i["workload"] == workload.as_str())
                    .map(|i| i["state"].clone())
                    .filter(|s| s.get("failed").is_some() || s == "completed" || s == "stopped")
                    .ok_or(out.stdout)
            },
        )
    }

    /// Everything `name` printed.
    fn logs(&self, name: &str) -> String {
        let out = self.cli(&["logs", name]);
        format!("{}{}", out.stdout, out.stderr)
    }
}

fn failed_because(state: &Value, why: &str) {
    let reason = state["failed"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(why),
        "expected a failure saying {why:?}, got {state}"
    );
}

/// The secrets a workload must never print: the operator's object, and the
/// cloud's admin token, join credential and key-encryption key.
fn secrets(dev: &Dev) -> Vec<String> {
    let mut s = vec![SECRET.to_string()];
    for f in ["admin.token", "join.token", "replica-0/control/storage.kek"] {
        let text = std::fs::read_to_string(dev.dir.join(f)).expect("a secret file of the cloud");
        s.push(text.trim().to_string());
    }
    s
}

fn assert_leaks_nothing(what: &str, output: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !output.contains(s.as_str()),
            "{what} printed a secret: {output}"
        );
    }
    // The lender's /etc/shadow starts with root's line.
    assert!(
        !output.contains("root:"),
        "{what} printed a host account: {output}"
    );
}

#[test]
fn a_second_tenant_reaches_nothing_through_any_spec_field() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 2, 10);
    let iocat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wasm/iocat.wat");
    let iocat = iocat.to_string_lossy();
    // The operator's own module: bytes she never uploads.
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wasm/hello.wat");
    let hello = hello.to_string_lossy();

    // The operator's data: a bucket with a secret object, an image, a module.
    let token = wait_until("the API", Duration::from_secs(60), || {
        let out = dev.cli(&["tenants", "create", "mallory"]);
        match out.stdout.lines().last() {
            Some(t) if out.status.success() => Ok(t.trim().to_string()),
            _ => Err(out.stderr),
        }
    });
    // Mallory pays for her runs like anyone (the dev nodes are priced).
    dev.cli(&["account", "deposit", "mallory", "100000000"])
        .success("deposit");
    let m = Mallory { dev: &dev, token };
    let file = root.path().join("a.txt");
    std::fs::write(&file, SECRET).expect("write");
    dev.cli(&["bucket", "create", "vault"])
        .success("bucket create");
    dev.cli(&["put", &file.to_string_lossy(), "vault/jobs/a.txt"])
        .success("put");
    let tar = root.path().join("busybox.tar");
    stratus_flist::build::busybox_image(Path::new("/bin/busybox"))
        .write_docker_save(&tar, "busybox:latest")
        .expect("busybox-static is installed (scripts/setup-toolchain.sh)");
    dev.cli(&["image", "import", &tar.to_string_lossy()])
        .success("image import");
    let spec = root.path().join("admins.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: admins\nkind: task\nwasm: {{ module: {hello} }}\n\
             restart: {{ attempts: 0 }}\n"
        ),
    )
    .expect("write");
    let out = dev.cli(&["--json", "deploy", &spec.to_string_lossy()]);
    let w: Value = serde_json::from_str(&out.success("admin deploy")).expect("json");
    let admins_module = w["module"].as_str().expect("module hash").to_string();
    let secrets = secrets(&dev);

    // Mallory's own objects, so her tasks have something legitimate to read.
    m.cli(&["bucket", "create", "mine"]).success("her bucket");
    std::fs::write(&file, "hers").expect("write");
    m.cli(&["put", &file.to_string_lossy(), "mine/in/a.txt"])
        .success("her put");

    // 1. A host folder as input: refused while parsing.
    let out = m.deploy(
        "hostpath",
        &format!("version: 1\nname: hostpath\nkind: task\nwasm: {{ module: {iocat} }}\ninput: /\n"),
    );
    assert!(!out.status.success(), "input: / was accepted");
    assert!(out.stderr.contains("input"), "{}", out.stderr);

    // 2. The operator's bucket as input: the task fails before reading.
    let out = m.deploy(
        "steal-in",
        &format!(
            "version: 1\nname: steal-in\nkind: task\nwasm: {{ module: {iocat} }}\nargs: [a.txt]\n\
             input: {{ bucket: vault, prefix: jobs/ }}\nrestart: {{ attempts: 0 }}\n"
        ),
    );
    out.success("deploy steal-in");
    failed_because(&m.ended("steal-in"), "another tenant");
    assert_leaks_nothing("steal-in", &m.logs("steal-in"), &secrets);

    // 3. The operator's bucket as output: refused, nothing written there.
    let out = m.deploy(
        "steal-out",
        &format!(
            "version: 1\nname: steal-out\nkind: task\nwasm: {{ module: {iocat} }}\nargs: [a.txt]\n\
             input: {{ bucket: mine, prefix: in/ }}\noutput: {{ bucket: vault, prefix: planted/ }}\n\
             restart: {{ attempts: 0 }}\n"
        ),
    );
    out.success("deploy steal-out");
    failed_because(&m.ended("steal-out"), "another tenant");
    let out = dev.cli(&["ls", "vault/planted/"]);
    assert!(!out.stdout.contains("result.txt"), "{}", out.stdout);

    // 4. Paths out of /input in the arguments: WASI refuses them.
    let out = m.deploy(
        "dotdot",
        &format!(
            "version: 1\nname: dotdot\nkind: task\nwasm: {{ module: {iocat} }}\n\
             args: [../../../../etc/shadow, /etc/shadow]\ninput: {{ bucket: mine, prefix: in/ }}\n\
             restart: {{ attempts: 0 }}\n"
        ),
    );
    out.success("deploy dotdot");
    let state = m.ended("dotdot");
    assert!(state.get("failed").is_some(), "{state}");
    assert_leaks_nothing("dotdot", &m.logs("dotdot"), &secrets);

    // 5. The operator's module by its hash: unknown to her.
    let out = m.deploy(
        "their-module",
        &format!(
            "version: 1\nname: their-module\nkind: task\nwasm: {{ module: {admins_module} }}\n"
        ),
    );
    assert!(!out.status.success(), "ran another tenant's module");
    assert!(out.stderr.contains("not stored"), "{}", out.stderr);

    // 6. The operator's image by its name: not hers.
    let out = m.cli(&["run", "--image", "busybox", "--", "cat", "/etc/passwd"]);
    assert!(!out.status.success(), "ran another tenant's image");
    assert_leaks_nothing("their image", &out.stdout, &secrets);

    // Her own image, then what a container can reach.
    m.cli(&["image", "import", &tar.to_string_lossy()])
        .success("her image import");

    // 7. A volume kept in the operator's bucket: the start fails.
    let out = m.deploy(
        "steal-volume",
        "version: 1\nname: steal-volume\nkind: task\nimage:\n  name: busybox\n  \
         volumes: [{ name: v, path: /v, bucket: vault, key: jobs/a.txt }]\n\
         args: [cat, /v/a.txt]\nrestart: { attempts: 0 }\n",
    );
    out.success("deploy steal-volume");
    m.ended("steal-volume");
    assert_leaks_nothing("steal-volume", &m.logs("steal-volume"), &secrets);

    // 8. A host port of the lender's own services: never placed.
    m.deploy(
        "low-port",
        "version: 1\nname: low-port\nkind: service\nimage:\n  name: busybox\n  \
         ports: [{ container: 80, host: 80 }]\nargs: [sleep, '60']\n",
    )
    .success("deploy low-port");
    wait_until("the placement refusal", Duration::from_secs(30), || {
        let out = m.cli(&["inspect", "low-port"]);
        if out
            .stdout
            .contains("host port outside the node's allowed ports")
        {
            Ok(())
        } else {
            Err(out.stdout + &out.stderr)
        }
    });
    m.cli(&["stop", "low-port"]).success("stop");

    // 9. Inside her container: the host's files, processes and secrets are
    //    out of reach, and root there is no user of the host.
    let out = m.cli(&[
        "run",
        "--image",
        "busybox",
        "--",
        "sh",
        "-c",
        "cat /etc/shadow /proc/1/root/etc/shadow 2>&1; ls /proc | grep -c '^[0-9]'; \
         cat /proc/self/uid_map",
    ]);
    assert_leaks_nothing("her container", &out.stdout, &secrets);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "1000000000", "65536"]),
        "container root is not mapped away from host root: {}",
        out.stdout
    );
}
