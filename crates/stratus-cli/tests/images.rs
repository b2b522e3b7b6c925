//! The acceptance through the real binary: `stratus image import` of
//! a saved image, then `stratus run --image NAME -- CMD` prints the command's
//! output from a container on a node of the local cloud, and exits with its
//! code.

mod common;

use std::time::Duration;

use common::{cli, wait_until, Dev};

fn run_cli(dev: &Dev, args: &[&str]) -> common::CliOutput {
    let mut all = vec![
        "--dev-dir".to_string(),
        dev.dir.to_string_lossy().into_owned(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    cli(&all)
}

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
    wait_until("3 ready nodes", Duration::from_secs(90), || {
        let out = run_cli(&dev, &["nodes", "ls", "--json"]);
        if out.stdout.matches("\"ready\"").count() >= 3 {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });

    let out = run_cli(&dev, &["image", "import", &tar.to_string_lossy()]);
    assert!(out.status.success(), "import failed: {}", out.stderr);
    assert!(
        out.stdout.contains("imported busybox:latest"),
        "{}",
        out.stdout
    );

    let out = run_cli(&dev, &["image", "ls"]);
    assert!(out.stdout.contains("busybox:latest"), "{}", out.stdout);

    let out = run_cli(
        &dev,
        &[
            "run",
            "--image",
            "busybox",
            "--",
            "sh",
            "-c",
            "echo hello from a container; exit 5",
        ],
    );
    assert_eq!(
        out.stdout, "hello from a container\n",
        "stderr: {}",
        out.stderr
    );
    assert_eq!(out.status.code(), Some(5), "stderr: {}", out.stderr);

    // An image that does not exist is refused before anything is scheduled.
    let out = run_cli(&dev, &["run", "--image", "nosuch", "--", "true"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);
}
