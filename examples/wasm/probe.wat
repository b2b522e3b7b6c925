;; Reads both WASI clocks and 16 random bytes, computes two NaNs (0/0, and
;; a NaN with a payload plus one), reads the realtime clock again, and
;; writes the 48 bytes to stdout: different on every run unless the run is
;; deterministic (issue 16).
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 8)))
    (drop (call $random (i32.const 16) (i32.const 16)))
    (i32.store (i32.const 32)
      (i32.reinterpret_f32 (f32.div (f32.const 0) (f32.const 0))))
    (i32.store (i32.const 36)
      (i32.reinterpret_f32
        (f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (f32.const 1))))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 40)))
    (i32.store (i32.const 64) (i32.const 0))
    (i32.store (i32.const 68) (i32.const 48))
    (drop (call $write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))))
