//! Enforcement of memory and CPU limits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::{Exit, ExitReason, Meter, RuntimeError};

/// Largest number of elements of one table (8 bytes each on the host).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Host bytes one table element is charged (a function or extern
/// reference: one pointer) against the memory limit.
pub(crate) const TABLE_ELEMENT_BYTES: usize = 8;
/// Largest number of instances, tables and memories in one store.
const MAX_INSTANCES: usize = 1_000;
const MAX_TABLES: usize = 1_000;
const MAX_MEMORIES: usize = 100;

/// The error a refused `memory.grow` traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded: the guest asked for {wanted} bytes in total")]
pub(crate) struct MemoryLimitExceeded {
    limit: usize,
    wanted: usize,
}

/// The error a refused `table.grow` traps with.
#[derive(Debug, thiserror::Error)]
#[error("table limit of {MAX_TABLE_ELEMENTS} elements exceeded: the guest asked for {wanted}")]
pub(crate) struct TableLimitExceeded {
    wanted: usize,
}

/// Counts all linear memories and tables of a store against one limit (a
/// table element costs [`TABLE_ELEMENT_BYTES`]), so a guest cannot take host
/// memory through tables that its memory limit would refuse it.
#[derive(Debug)]
pub(crate) struct GuestLimiter {
    memory_limit: usize,
    /// Bytes of linear memory plus table elements granted so far.
    memory_used: usize,
    /// What the last permitted growth added (undone if the growth failed).
    last_growth: usize,
    /// Set when a growth was refused: the guest's end is a memory-limit end.
    pub(crate) exceeded: bool,
    /// Where the memory in use is recorded.
    meter: Meter,
}

impl GuestLimiter {
    pub(crate) fn new(memory_limit: u64, meter: Meter) -> Self {
        GuestLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            memory_used: 0,
            last_growth: 0,
            exceeded: false,
            meter,
        }
    }
}

impl GuestLimiter {
    /// Grants `growth` more bytes, or refuses (fatally) past the limit.
    fn charge(&mut self, growth: usize) -> wasmtime::Result<bool> {
        let wanted = self.memory_used.saturating_add(growth);
        if wanted > self.memory_limit {
            self.exceeded = true;
            return Err(MemoryLimitExceeded {
                limit: self.memory_limit,
                wanted,
            }
            .into());
        }
        self.memory_used = wanted;
        self.last_growth = growth;
        self.meter.see_memory(wanted as u64);
        Ok(true)
    }

    /// Gives back the last grant (its growth did not happen).
    fn undo_last(&mut self) {
        self.memory_used = self.memory_used.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.charge(desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth we counted did not happen (e.g. past the memory's own
        // maximum): `memory.grow` returns -1 to the guest as usual.
        self.undo_last();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.exceeded = true;
            return Err(TableLimitExceeded { wanted: desired }.into());
        }
        self.charge(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Whether a guest error is a refused growth (memory or table).
pub(crate) fn is_limit_error(error: &wasmtime::Error) -> bool {
    error.is::<MemoryLimitExceeded>() || error.is::<TableLimitExceeded>()
}

/// Wraps the guest's execution future and charges the time spent inside its
/// polls to a CPU budget; ends it with [`ExitReason::CpuLimit`] once the
/// budget is used up (checked each time the guest yields).
pub(crate) struct CpuMetered<F> {
    inner: Pin<Box<F>>,
    used: Duration,
    budget: Option<Duration>,
    /// Where the time is also added, for usage reports.
    meter: Meter,
}

impl<F> CpuMetered<F> {
    pub(crate) fn new(inner: F, budget: Option<Duration>, meter: Meter) -> Self {
        CpuMetered {
            inner: Box::pin(inner),
            used: Duration::ZERO,
            budget,
            meter,
        }
    }
}

impl<F: Future<Output = Result<Exit, RuntimeError>>> Future for CpuMetered<F> {
    type Output = Result<Exit, RuntimeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let started = Instant::now();
        let result = this.inner.as_mut().poll(cx);
        let spent = started.elapsed();
        this.used += spent;
        this.meter.add_cpu(spent);
        if result.is_pending() && this.budget.is_some_and(|budget| this.used > budget) {
            tracing::debug!(used = ?this.used, "guest used up its CPU budget");
            return Poll::Ready(Ok(Exit::killed(ExitReason::CpuLimit)));
        }
        result
    }
}
