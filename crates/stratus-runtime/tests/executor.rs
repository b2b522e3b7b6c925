//! End-to-end tests of the WASM executor, with guests written in WAT (so they
//! need no wasm32 target) plus the Rust examples when they have been built.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_runtime::{
    module_hash, DynExecutor, Executor, Exit, ExitReason, Output, RuntimeError, TaskSpec,
    WasmExecutor, EXIT_CODE_KILLED, EXIT_CODE_TRAP,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> Arc<Vec<u8>> {
    let path = repo_root().join("examples/wasm").join(name);
    Arc::new(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn test_wat(name: &str) -> Arc<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wat")
        .join(name);
    Arc::new(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn wat(text: &str) -> Arc<Vec<u8>> {
    Arc::new(text.as_bytes().to_vec())
}

fn executor() -> WasmExecutor {
    WasmExecutor::new().expect("executor")
}

/// What a run produced.
struct Run {
    exit: Exit,
    stdout: String,
    stderr: String,
    stdout_chunks: usize,
}

async fn run(executor: &WasmExecutor, spec: TaskSpec) -> Result<Run, RuntimeError> {
    run_with(executor, spec, CancellationToken::new()).await
}

async fn run_with(
    executor: &WasmExecutor,
    spec: TaskSpec,
    cancel: CancellationToken,
) -> Result<Run, RuntimeError> {
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let (mut stdout, mut stderr, mut chunks) = (Vec::new(), Vec::new(), 0);
        while let Some(output) = rx.recv().await {
            match output {
                Output::Stdout(data) => {
                    chunks += 1;
                    stdout.extend(data);
                }
                Output::Stderr(data) => stderr.extend(data),
            }
        }
        (stdout, stderr, chunks)
    });
    let exit = executor.run(spec, tx, cancel).await?;
    let (stdout, stderr, stdout_chunks) = collector.await.expect("collector");
    Ok(Run {
        exit,
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
        stdout_chunks,
    })
}

#[tokio::test]
async fn hello_prints_and_exits_zero() {
    let executor = executor();
    let mut spec = TaskSpec::new("hello", example("hello.wat"));
    spec.args = vec!["Stratus".into()];
    let run = run(&executor, spec).await.expect("run");
    assert_eq!(run.exit, Exit::exited(0));
    assert!(run.exit.success());
    assert_eq!(run.stdout, "Hello, Stratus!\n");
    assert_eq!(run.stderr, "");

    let run = self::run(&executor, TaskSpec::new("hello", example("hello.wat")))
        .await
        .expect("run");
    assert_eq!(run.stdout, "Hello, world!\n");
}

#[tokio::test]
async fn args_env_and_stdin_are_visible_and_nothing_else() {
    let executor = executor();
    let mut spec = TaskSpec::new("echo", test_wat("echo.wat"));
    spec.args = vec!["a b".into(), "c".into()];
    spec.env = vec![
        ("GREETING".into(), "hi there".into()),
        ("EMPTY".into(), String::new()),
    ];
    spec.stdin = Some(b"from stdin".to_vec());
    let run = run(&executor, spec).await.expect("run");
    assert_eq!(run.exit, Exit::exited(0));
    assert_eq!(
        run.stdout,
        "arg=echo\narg=a b\narg=c\nenv=GREETING=hi there\nenv=EMPTY=\nstdin=from stdin\n"
    );

    // No stdin, no env: the host's environment (PATH, HOME...) never leaks.
    let run = self::run(&executor, TaskSpec::new("echo", test_wat("echo.wat")))
        .await
        .expect("run");
    assert_eq!(run.stdout, "arg=echo\n");
}

#[tokio::test]
async fn exit_code_is_propagated() {
    let module = wat(r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start") (call $exit (i32.const 3))))"#);
    let run = run(&executor(), TaskSpec::new("exit3", module))
        .await
        .expect("run");
    assert_eq!(run.exit, Exit::exited(3));
    assert!(!run.exit.success());
}

#[tokio::test]
async fn trap_is_reported_with_its_cause() {
    let module = wat(r#"(module
        (memory (export "memory") 1)
        (func $boom unreachable)
        (func (export "_start") (call $boom)))"#);
    let run = run(&executor(), TaskSpec::new("trap", module))
        .await
        .expect("run");
    assert_eq!(run.exit.code, EXIT_CODE_TRAP);
    match &run.exit.reason {
        ExitReason::Trap(message) => {
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }

    let module = wat(r#"(module
        (memory (export "memory") 1)
        (func (export "_start") (drop (i32.load (i32.const 70000)))))"#);
    let run = self::run(&executor(), TaskSpec::new("oob", module))
        .await
        .expect("run");
    assert!(
        matches!(&run.exit.reason, ExitReason::Trap(m) if m.contains("out of bounds")),
        "{:?}",
        run.exit
    );

    let module = wat(r#"(module
        (memory (export "memory") 1)
        (func $recurse (call $recurse))
        (func (export "_start") (call $recurse)))"#);
    let run = self::run(&executor(), TaskSpec::new("deep", module))
        .await
        .expect("run");
    assert!(
        matches!(&run.exit.reason, ExitReason::Trap(m) if m.contains("stack")),
        "{:?}",
        run.exit
    );
}

// A current-thread runtime: the guest must yield for the limit to be noticed.
#[tokio::test(flavor = "current_thread")]
async fn cpu_limit_stops_an_infinite_loop() {
    let mut spec = TaskSpec::new("loop", example("loop.wat"));
    spec.limits.cpu_time = Some(Duration::from_millis(200));
    let started = Instant::now();
    let run = run(&executor(), spec).await.expect("run");
    let elapsed = started.elapsed();
    assert_eq!(run.exit, Exit::killed(ExitReason::CpuLimit));
    assert_eq!(run.exit.code, EXIT_CODE_KILLED);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn wall_limit_stops_an_infinite_loop() {
    let mut spec = TaskSpec::new("loop", example("loop.wat"));
    spec.limits.wall_time = Some(Duration::from_millis(300));
    let started = Instant::now();
    let run = run(&executor(), spec).await.expect("run");
    let elapsed = started.elapsed();
    assert_eq!(run.exit, Exit::killed(ExitReason::WallTimeout));
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn cancellation_stops_an_infinite_loop_promptly() {
    let executor = Arc::new(executor());
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let executor = executor.clone();
        let cancel = cancel.clone();
        async move {
            run_with(
                &executor,
                TaskSpec::new("loop", example("loop.wat")),
                cancel,
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished());
    let cancelled_at = Instant::now();
    cancel.cancel();
    let run = task.await.expect("join").expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::Cancelled));
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "{:?}",
        cancelled_at.elapsed()
    );
}

#[tokio::test]
async fn cancelled_before_start() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let run = run_with(
        &executor(),
        TaskSpec::new("hello", example("hello.wat")),
        cancel,
    )
    .await
    .expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::Cancelled));
    assert_eq!(run.stdout, "");
}

#[tokio::test]
async fn memory_limit_stops_an_over_allocating_guest() {
    // Grows by 1 MiB at a time and never stops.
    let module = wat(r#"(module
        (memory (export "memory") 1)
        (func (export "_start")
            (loop $more
                (drop (memory.grow (i32.const 16)))
                (br $more))))"#);
    let mut spec = TaskSpec::new("hog", module);
    spec.limits.memory_bytes = 16 * 1024 * 1024;
    spec.limits.wall_time = Some(Duration::from_secs(30));
    let run = run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::MemoryLimit));

    // An initial memory above the limit is refused the same way.
    let module = wat(r#"(module
        (memory (export "memory") 512)
        (func (export "_start")))"#);
    let mut spec = TaskSpec::new("big", module);
    spec.limits.memory_bytes = 16 * 1024 * 1024;
    let run = self::run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::MemoryLimit));

    // Growing past the memory's own maximum is the ordinary -1, not the limit.
    let module = wat(r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1 2)
        (func (export "_start")
            (call $exit (i32.eq (memory.grow (i32.const 5)) (i32.const -1)))))"#);
    let run = self::run(&executor(), TaskSpec::new("max", module))
        .await
        .expect("run");
    assert_eq!(run.exit, Exit::exited(1));
}

/// The attacker: ten tables of 500,000 elements each (40 MB of host memory
/// at 8 bytes an element, each table under the 1 Mi-element cap) with a
/// 16 MiB memory limit. Tables count against the memory limit, so the guest
/// is stopped as for a memory hog; a small table still grows.
#[tokio::test]
async fn memory_limit_counts_table_elements() {
    let module = wat(r#"(module
        (memory (export "memory") 1)
        (table $t0 0 funcref)
        (table $t1 0 funcref)
        (table $t2 0 funcref)
        (table $t3 0 funcref)
        (table $t4 0 funcref)
        (table $t5 0 funcref)
        (table $t6 0 funcref)
        (table $t7 0 funcref)
        (table $t8 0 funcref)
        (table $t9 0 funcref)
        (func (export "_start")
            (drop (table.grow $t0 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t1 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t2 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t3 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t4 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t5 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t6 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t7 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t8 (ref.null func) (i32.const 500000)))
            (drop (table.grow $t9 (ref.null func) (i32.const 500000)))
        ))"#);
    let mut spec = TaskSpec::new("tables", module);
    spec.limits.memory_bytes = 16 * 1024 * 1024;
    spec.limits.wall_time = Some(Duration::from_secs(30));
    let run = run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::MemoryLimit));

    // Within the limit: 10,000 elements (80 KB) grow as usual.
    let module = wat(r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (table $t 0 funcref)
        (func (export "_start")
            (call $exit (i32.ne (table.grow $t (ref.null func) (i32.const 10000)) (i32.const 0)))))"#);
    let mut spec = TaskSpec::new("small-table", module);
    spec.limits.memory_bytes = 16 * 1024 * 1024;
    let run = self::run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::exited(0));
}

#[tokio::test]
async fn filesystem_is_limited_to_the_preopens() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = root.path().join("input");
    let output = root.path().join("output");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::create_dir(&output).expect("mkdir");
    std::fs::write(input.join("data.txt"), "hello from the host\n").expect("write");
    std::fs::write(root.path().join("secret.txt"), "host secret\n").expect("write");
    std::os::unix::fs::symlink(root.path().join("secret.txt"), input.join("link"))
        .expect("symlink");

    let mut spec = TaskSpec::new("fs", test_wat("fs.wat"));
    spec.input_dir = Some(input.clone());
    spec.output_dir = Some(output.clone());
    let run = run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::exited(0));
    assert_eq!(
        run.stdout,
        "read_input ok\n\
         content: hello from the host\n\
         write_output ok\n\
         dotdot denied\n\
         absolute denied\n\
         symlink denied\n\
         write_input denied\n\
         output_escape denied\n\
         bad_fd denied\n"
    );
    assert!(!run.stdout.contains("host secret"));
    assert_eq!(
        std::fs::read_to_string(output.join("result.txt")).expect("result"),
        "written by guest\n"
    );
    assert!(!input.join("new.txt").exists());
    assert!(!root.path().join("escape.txt").exists());
}

#[tokio::test]
async fn missing_preopen_folder_is_an_error() {
    let mut spec = TaskSpec::new("hello", example("hello.wat"));
    spec.input_dir = Some(PathBuf::from("/nonexistent/stratus-input"));
    let error = run(&executor(), spec).await.err().expect("error");
    assert!(
        matches!(
            error,
            RuntimeError::Preopen {
                guest: "/input",
                ..
            }
        ),
        "{error}"
    );
}

/// The service example: output arrives tick by tick while the guest runs,
/// /output is written, sleeping is not charged as CPU, and cancelling a
/// sleeping guest works.
#[tokio::test]
async fn service_streams_output_while_running() {
    let output_dir = tempfile::tempdir().expect("tempdir");
    let executor = Arc::new(executor());
    let mut spec = TaskSpec::new("service", example("service.wat"));
    spec.args = vec!["100".into()];
    spec.output_dir = Some(output_dir.path().to_path_buf());
    // Far less CPU than the run lasts: time spent sleeping is not charged.
    spec.limits.cpu_time = Some(Duration::from_millis(150));
    let (tx, mut rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let executor = executor.clone();
        let cancel = cancel.clone();
        async move { executor.run(spec, tx, cancel).await }
    });
    for tick in 1..=5 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a tick within 5 s")
            .expect("channel open");
        assert_eq!(chunk, Output::Stdout(format!("tick {tick}\n").into_bytes()));
        assert!(!task.is_finished(), "output must arrive before the exit");
    }
    cancel.cancel();
    let exit = task.await.expect("join").expect("run");
    assert_eq!(exit, Exit::killed(ExitReason::Cancelled));
    let log = std::fs::read_to_string(output_dir.path().join("ticks.log")).expect("ticks.log");
    assert!(
        log.starts_with("tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n"),
        "{log}"
    );
}

#[tokio::test]
async fn service_without_output_folder_warns_on_stderr() {
    let mut spec = TaskSpec::new("service", example("service.wat"));
    spec.args = vec!["50".into()];
    spec.limits.wall_time = Some(Duration::from_millis(500));
    let run = run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::WallTimeout));
    assert_eq!(run.stderr, "service: no /output preopen, printing only\n");
    assert!(run.stdout.starts_with("tick 1\ntick 2\n"), "{}", run.stdout);
    assert!(run.stdout_chunks >= 2);
}

#[tokio::test]
async fn output_is_discarded_when_nobody_listens() {
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let mut spec = TaskSpec::new("cpu", example("cpu.wat"));
    spec.args = vec!["1000".into()];
    let exit = executor()
        .run(spec, tx, CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(exit, Exit::exited(0));
}

#[tokio::test]
async fn cpu_example_counts_primes() {
    let mut spec = TaskSpec::new("cpu", example("cpu.wat"));
    spec.args = vec!["1000".into()];
    let run = run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::exited(0));
    assert_eq!(run.stdout, "primes up to 1000: 168\n");
}

#[tokio::test]
async fn compiled_modules_are_cached_by_hash() {
    let executor = executor();
    let module = example("hello.wat");
    let hash = module_hash(&module);
    assert!(
        hash.starts_with("blake3:") && hash.len() == 7 + 64,
        "{hash}"
    );
    assert_eq!(executor.cache_len(), 0);
    assert!(!executor.is_cached(&hash));

    let first = run(&executor, TaskSpec::new("hello", module.clone()))
        .await
        .expect("run");
    assert_eq!(executor.cache_len(), 1);
    assert!(executor.is_cached(&hash));
    let second = run(&executor, TaskSpec::new("hello", module.clone()))
        .await
        .expect("run");
    assert_eq!(executor.cache_len(), 1, "the second run is a cache hit");
    assert_eq!(first.stdout, second.stdout);

    // Same bytes in a new allocation: still a hit.
    let copy = Arc::new(module.as_ref().clone());
    assert_eq!(executor.prepare(&copy).await.expect("prepare"), hash);
    assert_eq!(executor.cache_len(), 1);

    let other = executor
        .prepare(&example("loop.wat"))
        .await
        .expect("prepare");
    assert_ne!(other, hash);
    assert_eq!(executor.cache_len(), 2);
}

#[tokio::test]
async fn cache_evicts_the_least_recently_used() {
    let executor = WasmExecutor::with_cache_capacity(2).expect("executor");
    let hello = executor
        .prepare(&example("hello.wat"))
        .await
        .expect("hello");
    let looping = executor.prepare(&example("loop.wat")).await.expect("loop");
    executor
        .prepare(&example("hello.wat"))
        .await
        .expect("hello again");
    let cpu = executor.prepare(&example("cpu.wat")).await.expect("cpu");
    assert_eq!(executor.cache_len(), 2);
    assert!(executor.is_cached(&hello));
    assert!(executor.is_cached(&cpu));
    assert!(!executor.is_cached(&looping));
}

#[tokio::test]
async fn corrupt_modules_are_clear_errors() {
    let executor = executor();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "bad body",
            b"\0asm\x01\0\0\0\x01\xff\xff\xff".to_vec(),
            "invalid module",
        ),
        ("bad version", b"\0asm\x63\0\0\0".to_vec(), "invalid module"),
        (
            "binary garbage",
            vec![0xff, 0xfe, 0x00, 0x80, 0x81],
            "not UTF-8",
        ),
        (
            "bad text",
            b"(module (func (export \"_start\") (i32.add)))".to_vec(),
            "invalid",
        ),
    ];
    for (what, bytes, expected) in cases {
        let error = run(&executor, TaskSpec::new("bad", Arc::new(bytes)))
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: expected an error"));
        assert!(
            matches!(error, RuntimeError::InvalidModule(_)),
            "{what}: {error}"
        );
        assert!(error.to_string().contains(expected), "{what}: {error}");
    }
    assert_eq!(executor.cache_len(), 0, "failures are not cached");
}

#[tokio::test]
async fn non_wasi_imports_do_not_link() {
    let module = wat(r#"(module
        (import "env" "host_secret" (func))
        (memory (export "memory") 1)
        (func (export "_start")))"#);
    let error = run(&executor(), TaskSpec::new("imports", module))
        .await
        .err()
        .expect("error");
    assert!(matches!(error, RuntimeError::Link(_)), "{error}");
    assert!(error.to_string().contains("host_secret"), "{error}");

    // Sockets are not part of the sandbox.
    let module = wat(r#"(module
        (import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")))"#);
    let error = run(&executor(), TaskSpec::new("socket", module))
        .await
        .err()
        .expect("error");
    assert!(matches!(error, RuntimeError::Link(_)), "{error}");
}

#[tokio::test]
async fn module_without_start_is_an_error() {
    let module = wat(r#"(module (memory (export "memory") 1) (func (export "main")))"#);
    let error = run(&executor(), TaskSpec::new("lib", module))
        .await
        .err()
        .expect("error");
    assert!(matches!(error, RuntimeError::NoEntryPoint(_)), "{error}");
}

/// A minimal preview 2 command component (no imports): `run` returns `err`
/// or `ok`, which is exit code 1 or 0.
#[tokio::test]
async fn preview2_component_runs() {
    let component = |result: i32| {
        wat(&format!(
            r#"(component
                (core module $m (func (export "run") (result i32) (i32.const {result})))
                (core instance $i (instantiate $m))
                (func $run (result (result)) (canon lift (core func $i "run")))
                (instance $cli (export "run" (func $run)))
                (export "wasi:cli/run@0.2.0" (instance $cli)))"#
        ))
    };
    let executor = executor();
    let run = run(&executor, TaskSpec::new("p2", component(1)))
        .await
        .expect("run");
    assert_eq!(run.exit, Exit::exited(1));
    let run = self::run(&executor, TaskSpec::new("p2", component(0)))
        .await
        .expect("run");
    assert_eq!(run.exit, Exit::exited(0));
}

#[tokio::test]
async fn dyn_executor_is_usable() {
    let executor: Arc<dyn DynExecutor> = Arc::new(executor());
    let (tx, mut rx) = mpsc::channel(8);
    let mut spec = TaskSpec::new("hello", example("hello.wat"));
    spec.args = vec!["dyn".into()];
    let exit = executor
        .run_dyn(spec, tx, CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(exit, Exit::exited(0));
    let mut stdout = Vec::new();
    while let Some(Output::Stdout(chunk)) = rx.recv().await {
        stdout.extend(chunk);
    }
    assert_eq!(stdout, b"Hello, dyn!\n");
}

/// The Rust examples, when built (see examples/wasm/README.md); skipped
/// otherwise so the suite needs no wasm32 target.
fn built_example(name: &str, target: &str) -> Option<Arc<Vec<u8>>> {
    let path = repo_root()
        .join("examples/wasm")
        .join(name)
        .join("target")
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => Some(Arc::new(bytes)),
        Err(_) => {
            eprintln!("skipping: {} is not built", path.display());
            None
        }
    }
}

#[tokio::test]
async fn rust_examples_run() {
    for target in ["wasm32-wasip1", "wasm32-wasip2"] {
        let executor = executor();
        if let Some(hello) = built_example("hello", target) {
            let mut spec = TaskSpec::new("hello", hello);
            spec.args = vec!["Rust".into()];
            let run = run(&executor, spec).await.expect("run");
            assert_eq!(run.exit, Exit::exited(0), "{target}: {}", run.stderr);
            assert_eq!(run.stdout, "Hello, Rust!\n", "{target}");
        }
        if let Some(cpu) = built_example("cpu", target) {
            let mut spec = TaskSpec::new("cpu", cpu.clone());
            spec.args = vec!["1000".into()];
            let run = run(&executor, spec).await.expect("run");
            assert_eq!(run.exit, Exit::exited(0), "{target}: {}", run.stderr);
            assert_eq!(run.stdout, "primes up to 1000: 168\n", "{target}");

            let mut spec = TaskSpec::new("cpu", cpu.clone());
            spec.args = vec!["not-a-number".into()];
            let run = self::run(&executor, spec).await.expect("run");
            // WASI preview 2 (without the unstable `exit-with-code`) can only
            // say success or failure: every non-zero code becomes 1.
            let code = if target == "wasm32-wasip1" { 2 } else { 1 };
            assert_eq!(run.exit, Exit::exited(code), "{target}");
            assert!(run.stderr.contains("bad limit"), "{target}: {}", run.stderr);

            let mut spec = TaskSpec::new("cpu", cpu);
            spec.args = vec!["4000000000".into()];
            spec.limits.cpu_time = Some(Duration::from_millis(200));
            let run = self::run(&executor, spec).await.expect("run");
            assert_eq!(run.exit, Exit::killed(ExitReason::CpuLimit), "{target}");
        }
        if let Some(service) = built_example("service", target) {
            let output_dir = tempfile::tempdir().expect("tempdir");
            let mut spec = TaskSpec::new("service", service);
            spec.args = vec!["50".into()];
            spec.output_dir = Some(output_dir.path().to_path_buf());
            spec.limits.wall_time = Some(Duration::from_millis(400));
            let run = run(&executor, spec).await.expect("run");
            assert_eq!(run.exit, Exit::killed(ExitReason::WallTimeout), "{target}");
            assert!(
                run.stdout.starts_with("tick 1\ntick 2\n"),
                "{target}: {}",
                run.stdout
            );
            assert!(run.stdout_chunks >= 2, "{target}");
            let log = std::fs::read_to_string(output_dir.path().join("ticks.log")).expect("log");
            assert!(log.starts_with("tick 1\ntick 2\n"), "{target}: {log}");
        }
    }
}

/// A Rust guest that allocates without bound hits the memory limit.
#[tokio::test]
async fn rust_guest_memory_limit() {
    let Some(hello) = built_example("hello", "wasm32-wasip1") else {
        return;
    };
    // Rust's runtime needs more than one 64 KiB page (its initial memory
    // is ~1 MiB + stack); 64 KiB is too little to even start.
    let mut spec = TaskSpec::new("hello", hello);
    spec.limits.memory_bytes = 64 * 1024;
    let run = run(&executor(), spec).await.expect("run");
    assert_eq!(run.exit, Exit::killed(ExitReason::MemoryLimit));
}
