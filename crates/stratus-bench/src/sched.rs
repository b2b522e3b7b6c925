//! `stratus bench sched`: scheduler placements per second on one core,
//! over the scheduler's synthetic cluster (`stratus_sched::sim`).

/// Runs the benchmark.
pub(crate) fn sched(nodes: usize, tasks: usize, seed: u64) {
    let r = stratus_sched::sim::simulate(nodes, tasks, seed);
    let rate = r.placements_per_sec();
    println!(
        "scheduler: {nodes} simulated nodes, {tasks} tasks in {} jobs (seed {seed}), one thread",
        r.jobs
    );
    println!(
        "  placed          {:>10}  (unplaced {})",
        r.placements, r.unplaced
    );
    println!(
        "  elapsed         {:>10.1} ms (cluster build {:.1} ms)",
        r.elapsed.as_secs_f64() * 1e3,
        r.build.as_secs_f64() * 1e3
    );
    println!("  placements/s    {rate:>10.0}");
    println!(
        "  vs Nomad C1M (~3,750/s on 5 servers): {:.0}x; vs goal 10,000/s: {:.0}x",
        rate / 3750.0,
        rate / 10_000.0
    );
}
