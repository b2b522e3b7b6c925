//! Deterministic execution (issue 16, item 1): the same module, arguments,
//! environment and input give bit-identical output, exit code and CPU
//! count on every node, so results of independent lenders can be compared.
//!
//! What a guest could otherwise observe that differs between two runs, and
//! what stands in for it here:
//!
//! * **Clocks.** Both WASI clocks start from [`Determinism::start_ms`] (the
//!   deal's time, the same for every replica) and advance by one
//!   microsecond per reading: a guest measuring elapsed time sees time pass,
//!   and the readings depend only on what it did.
//! * **Randomness.** `random_get` and `wasi:random` draw from ChaCha
//!   (`rand`'s `StdRng`) seeded by [`Determinism::seed`] (derived from the
//!   deal); the insecure generator and its seed from the same seed with a
//!   domain tag.
//! * **NaN bit patterns.** Cranelift canonicalizes every NaN a float
//!   operation produces, so the payload of a NaN never depends on the CPU;
//!   relaxed SIMD instructions take their deterministic semantics.
//! * **CPU.** Counted in fuel (about one unit per wasm instruction), not in
//!   time: the budget ([`Determinism::fuel`]) runs out at the same
//!   instruction everywhere ([`crate::ExitReason::CpuLimit`]), and the fuel
//!   used is what is metered ([`crate::Meter::fuel`]).
//! * **Network.** None: sockets and name lookup are disabled for every
//!   guest (see the crate docs).
//!
//! Left to the caller: the guest's arguments, environment and `/input`
//! must be identical byte for byte (the agent fills `/input` from the same
//! objects); a guest that lists `/input` sees the host file system's
//! order, which differs between nodes, so it must sort what it lists.
//! Identical results are checked on x86_64 only: this build machine has no
//! aarch64 target to run the same tests on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand_det::rngs::StdRng;
use rand_det::SeedableRng;
use wasmtime::Config;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// How far the clocks advance at each reading.
const TICK_NS: u64 = 1_000;

/// The fixed inputs of a deterministic run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Determinism {
    /// Seed of the guest's random numbers.
    pub seed: [u8; 32],
    /// Where the wall clock starts (ms since the Unix epoch).
    pub start_ms: u64,
    /// Fuel the guest may burn (about one unit per wasm instruction).
    pub fuel: u64,
}

/// Sets the engine options deterministic runs need.
pub(crate) fn configure_engine(config: &mut Config) {
    config
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .consume_fuel(true);
}

/// Gives `wasi` the fixed clocks and seeded generators of `d`.
pub(crate) fn configure_wasi(wasi: &mut WasiCtxBuilder, d: &Determinism) {
    let readings = Arc::new(AtomicU64::new(0));
    wasi.wall_clock(FixedWallClock {
        start: Duration::from_millis(d.start_ms),
        readings: readings.clone(),
    })
    .monotonic_clock(FixedMonotonicClock { readings })
    .secure_random(StdRng::from_seed(d.seed))
    .insecure_random(StdRng::from_seed(derive(&d.seed, "insecure")))
    .insecure_random_seed(u128::from_le_bytes(
        derive(&d.seed, "insecure seed")[..16]
            .try_into()
            .unwrap_or([0; 16]),
    ));
}

/// A 32-byte key derived from `seed` for `purpose`.
fn derive(seed: &[u8; 32], purpose: &str) -> [u8; 32] {
    blake3::keyed_hash(seed, purpose.as_bytes()).into()
}

/// One more reading of the shared clock: its offset from the start, ns.
fn tick(readings: &AtomicU64) -> u64 {
    readings
        .fetch_add(1, Ordering::Relaxed)
        .saturating_add(1)
        .saturating_mul(TICK_NS)
}

struct FixedWallClock {
    start: Duration,
    readings: Arc<AtomicU64>,
}

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(TICK_NS)
    }

    fn now(&self) -> Duration {
        self.start + Duration::from_nanos(tick(&self.readings))
    }
}

struct FixedMonotonicClock {
    readings: Arc<AtomicU64>,
}

impl HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        TICK_NS
    }

    fn now(&self) -> u64 {
        tick(&self.readings)
    }
}
