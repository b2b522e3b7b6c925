//! Deterministic runs (issue 16, item 1): the same module and inputs give
//! bit-identical output, exit code and fuel on every run; clocks and
//! randomness come from the run's fixed inputs, NaNs are canonical, and the
//! CPU budget is fuel.

use std::sync::Arc;

use proptest::prelude::*;
use stratus_runtime::{
    Determinism, Executor, Exit, ExitReason, Meter, Output, TaskSpec, WasmExecutor,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Writes 48 bytes: the realtime clock, the monotonic clock, 16 random
/// bytes, the bits of two NaNs (0/0, and a NaN with a payload plus one),
/// and the realtime clock again.
const PROBE: &str = include_str!("../../../examples/wasm/probe.wat");

/// Spins forever without calling the host.
const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

/// Counts to 10,000, then exits 3.
const COUNT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
    (call $exit (i32.const 3))))
"#;

/// What a run produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    reason: ExitReason,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    fuel: u64,
}

fn executor() -> &'static WasmExecutor {
    static EXECUTOR: std::sync::OnceLock<WasmExecutor> = std::sync::OnceLock::new();
    EXECUTOR.get_or_init(|| WasmExecutor::new().expect("executor"))
}

async fn run(module: &str, determinism: Option<Determinism>) -> Outcome {
    let mut spec = TaskSpec::new("probe", Arc::new(module.as_bytes().to_vec()));
    spec.determinism = determinism;
    let meter = Meter::default();
    spec.meter = meter.clone();
    let (tx, mut rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(o) = rx.recv().await {
            match o {
                Output::Stdout(d) => out.extend(d),
                Output::Stderr(d) => err.extend(d),
            }
        }
        (out, err)
    });
    let Exit { code, reason } = executor()
        .run(spec, tx, CancellationToken::new())
        .await
        .expect("runs");
    let (stdout, stderr) = collect.await.expect("collector");
    Outcome {
        code,
        reason,
        stdout,
        stderr,
        fuel: meter.fuel(),
    }
}

fn fixed(seed: u8, start_ms: u64) -> Determinism {
    Determinism {
        seed: [seed; 32],
        start_ms,
        fuel: 10_000_000,
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[tokio::test]
async fn clocks_randomness_and_nans_come_from_the_runs_fixed_inputs() {
    let start_ms = 1_790_000_000_000;
    let a = run(PROBE, Some(fixed(7, start_ms))).await;
    assert_eq!((a.code, &a.reason), (0, &ExitReason::Exited), "{a:?}");
    assert_eq!(a.stdout.len(), 48);
    // The clocks start at the deal's time and tick 1 µs per reading.
    assert_eq!(u64_at(&a.stdout, 0), start_ms * 1_000_000 + 1_000);
    assert_eq!(u64_at(&a.stdout, 8), 2_000);
    assert_eq!(u64_at(&a.stdout, 40), start_ms * 1_000_000 + 3_000);
    // Canonical NaNs, whatever the payload going in.
    assert_eq!(u32_at(&a.stdout, 32), 0x7fc0_0000);
    assert_eq!(u32_at(&a.stdout, 36), 0x7fc0_0000);
    // Another seed: other random bytes, the same clocks.
    let b = run(PROBE, Some(fixed(8, start_ms))).await;
    assert_ne!(a.stdout[16..32], b.stdout[16..32]);
    assert_eq!(a.stdout[..16], b.stdout[..16]);
    // An ordinary run reads the host's clock.
    let c = run(PROBE, None).await;
    assert_ne!(u64_at(&c.stdout, 0), u64_at(&a.stdout, 0));
    assert_eq!(c.fuel, 0, "an ordinary run counts no fuel");
    // Without canonicalization x86's 0/0 is the negative default NaN: the
    // deterministic engine is what made it canonical above.
    #[cfg(target_arch = "x86_64")]
    assert_eq!(u32_at(&c.stdout, 32), 0xffc0_0000);
}

#[tokio::test]
async fn fuel_is_the_cpu_budget_and_runs_out_at_the_same_point_everywhere() {
    let budget = Determinism {
        fuel: 50_000,
        ..fixed(1, 0)
    };
    let a = run(SPIN, Some(budget.clone())).await;
    assert_eq!(a.reason, ExitReason::CpuLimit, "{a:?}");
    assert_eq!(a.fuel, 50_000, "every unit burnt");
    assert_eq!(run(SPIN, Some(budget)).await, a);
    // A guest that ends within its fuel: the same count on every run.
    let done = run(COUNT, Some(fixed(1, 0))).await;
    assert_eq!((done.code, &done.reason), (3, &ExitReason::Exited));
    assert!(
        done.fuel > 10_000,
        "at least one unit per iteration: {done:?}"
    );
    assert_eq!(run(COUNT, Some(fixed(2, 99))).await, done);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any fixed inputs: two runs are bit-identical (output, exit, fuel).
    #[test]
    fn the_same_inputs_give_bit_identical_runs(seed in any::<u8>(), start_ms in 0u64..4_000_000_000_000) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (a, b) = rt.block_on(async {
            (
                run(PROBE, Some(fixed(seed, start_ms))).await,
                run(PROBE, Some(fixed(seed, start_ms))).await,
            )
        });
        prop_assert_eq!(&a, &b);
        prop_assert!(a.fuel > 0);
    }
}
