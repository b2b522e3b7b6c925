//! The acceptance through the real binary: `stratus image import` of
//! a saved image, then `stratus run --image NAME -- CMD` prints the command's
//! output from a container on a node of the local cloud, and exits with its
//! code. Then `stratus image pull` from a registry on loopback (Debian's
//! `docker-registry`, fed by skopeo) and `stratus exec` in a running service.

mod common;
/// The registry crate's test support: a real `docker-registry` and skopeo.
#[path = "../../stratus-registry/tests/common/mod.rs"]
#[allow(unused)]
mod registry;

use std::time::Duration;

use common::{wait_until, Dev};

#[test]
fn import_a_saved_image_then_run_a_command_in_a_container() {
    let root = tempfile::tempdir().expect("tempdir");
    let tar = root.path().join("busybox.tar");
    stratus_flist::build::busybox_image(std::path::Path::new("/bin/busybox"))
        .write_docker_save(&tar, "busybox:latest")
        .expect(
            "busybox-static is installed (scripts/setup-toolchain.sh) and the image is written",
        );
    let dev = Dev::start("cloud", root.path(), 3, 10);
    dev.wait_ready(3);

    let out = dev.cli(&["image", "import", &tar.to_string_lossy()]);
    assert!(out.status.success(), "import failed: {}", out.stderr);
    assert!(
        out.stdout.contains("imported busybox:latest"),
        "{}",
        out.stdout
    );

    let out = dev.cli(&["image", "ls"]);
    assert!(out.stdout.contains("busybox:latest"), "{}", out.stdout);

    let out = dev.cli(&[
        "run",
        "--image",
        "busybox",
        "--",
        "sh",
        "-c",
        "echo hello from a container; exit 5",
    ]);
    assert_eq!(
        out.stdout, "hello from a container\n",
        "stderr: {}",
        out.stderr
    );
    assert_eq!(out.status.code(), Some(5), "stderr: {}", out.stderr);

    // An image that does not exist is refused before anything is scheduled.
    let out = dev.cli(&["run", "--image", "nosuch", "--", "true"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);

    // A command the image lacks: the runtime's account, once, as our error;
    // none of the node's log records leak into the container's output.
    let out = dev.cli(&["run", "--image", "busybox", "--", "no-such-command"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("'no-such-command' not found"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.lines().all(|l| l.starts_with("stratus: ")),
        "only the CLI's own error on stderr: {}",
        out.stderr
    );

    // `stratus image pull` from a registry that requires a password.
    let reg = registry::Registry::start(Some(("alice", "s3cret")));
    let layout = root.path().join("layout");
    stratus_flist::build::busybox_image(std::path::Path::new("/bin/busybox"))
        .write_oci_layout(&layout, "v1")
        .expect("the OCI layout is written");
    let remote = format!("{}/tools/busybox:v1", reg.addr);
    registry::push(
        &layout,
        "v1",
        &reg.docker_ref("tools/busybox", "v1"),
        Some("alice:s3cret"),
        &[],
    );
    let pull = |password: &str| {
        dev.cli_env(
            &[
                "image",
                "pull",
                &remote,
                "--insecure",
                &reg.addr,
                "--user",
                "alice",
                "--name",
                "pulled:v1",
            ],
            &[("STRATUS_REGISTRY_PASSWORD", password)],
        )
    };
    let out = pull("wrong");
    assert!(!out.status.success(), "a wrong password was accepted");
    let out = pull("s3cret");
    assert!(out.status.success(), "pull failed: {}", out.stderr);
    assert!(out.stdout.contains("pulled:v1"), "{}", out.stdout);
    let out = dev.cli(&[
        "run",
        "--image",
        "pulled:v1",
        "--fetch",
        "full",
        "--",
        "echo",
        "pulled and run",
    ]);
    assert_eq!(out.stdout, "pulled and run\n", "stderr: {}", out.stderr);
    assert!(out.status.success());

    // `stratus exec` in a running service: output and exit code come back.
    let spec = root.path().join("svc.yaml");
    std::fs::write(
        &spec,
        "version: 1\nname: svc\nkind: service\nimage: { name: busybox }\nargs: [sleep, '600']\n",
    )
    .expect("spec written");
    let out = dev.cli(&["deploy", &spec.to_string_lossy()]);
    assert!(out.status.success(), "deploy failed: {}", out.stderr);
    wait_until("the service to run", Duration::from_secs(60), || {
        let out = dev.cli(&["ps", "--json"]);
        if out.stdout.contains("\"running\"") {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    let out = dev.cli(&[
        "exec",
        "svc",
        "--",
        "sh",
        "-c",
        "echo exec in $(hostname); ls /proc | grep -c '^[0-9]'; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("exec in svc"), "{}", out.stdout);
    // The container's own processes only: sleep, sh, ls, grep.
    let procs: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(
        procs <= 5,
        "the exec sees {procs} processes: {}",
        out.stdout
    );
    let out = dev.cli(&["exec", "nosuch", "--", "true"]);
    assert!(!out.status.success());
}
