;; cat.wat: `cat NAME` writes the file /input/NAME (the first preopen, fd 3)
;; to stdout. Exits 2 when it cannot be opened, 4 without an argument (or
;; with arguments over 900 bytes), 6 on a read error. The guest of the paid
;; apps and datasets example (`stratus app publish`, README).
(module
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $len (param $p i32) (result i32) (local $n i32)
    (block $d (loop $l
      (br_if $d (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l)))
    (local.get $n))
  (func (export "_start") (local $name i32) (local $fd i32) (local $n i32)
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (if (i32.or (i32.lt_u (i32.load (i32.const 16)) (i32.const 2))
                (i32.gt_u (i32.load (i32.const 20)) (i32.const 900)))
      (then (call $exit (i32.const 4))))
    (drop (call $args_get (i32.const 64) (i32.const 128)))
    (local.set $name (i32.load (i32.const 68)))
    (if (call $open (i32.const 3) (i32.const 0) (local.get $name) (call $len (local.get $name))
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $exit (i32.const 2))))
    (local.set $fd (i32.load (i32.const 12)))
    (loop $copy
      (i32.store (i32.const 0) (i32.const 4096))
      (i32.store (i32.const 4) (i32.const 4096))
      (if (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))
        (then (call $exit (i32.const 6))))
      (local.set $n (i32.load (i32.const 8)))
      (if (local.get $n) (then
        (i32.store (i32.const 4) (local.get $n))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br $copy))))))
