;; iocat.wat: the guest of the task input/output tests.
;; * `iocat FILE...`: copies each FILE under /input (the first preopen, fd 3)
;;   to stdout and to /output/result.txt (the second preopen, fd 4).
;; * `iocat fill`: writes /output/big (the only preopen, fd 3) 64 KiB at a
;;   time, forever.
;; Exits 2 when a file cannot be opened, 3-6 on other errors.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))

  ;; 0..8: iovec   8: nread/nwritten   12: opened fd   16: argc   20: argv size
  ;; 1024..2048: argv pointers   2048..8192: argv strings   8192..: names
  ;; 16384..81920: buffer
  (memory (export "memory") 2)
  (data (i32.const 8192) "result.txt")
  (data (i32.const 8208) "big")

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))

  (func $open (param $dir i32) (param $path i32) (param $len i32) (param $oflags i32)
      (param $rights i64) (result i32)
    (if (call $path_open (local.get $dir) (i32.const 0) (local.get $path) (local.get $len)
          (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $exit (i32.const 2))))
    (i32.load (i32.const 12)))

  (func (export "_start")
    (local $argc i32) (local $i i32) (local $arg i32) (local $in i32) (local $out i32)
    (local $n i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.or (i32.gt_u (i32.load (i32.const 16)) (i32.const 256))
                (i32.gt_u (i32.load (i32.const 20)) (i32.const 6144)))
      (then (call $exit (i32.const 3))))
    (drop (call $args_get (i32.const 1024) (i32.const 2048)))
    (local.set $argc (i32.load (i32.const 16)))
    (if (i32.lt_u (local.get $argc) (i32.const 2)) (then (call $exit (i32.const 4))))
    (local.set $arg (i32.load (i32.const 1028)))
    ;; "fill": oflags CREAT|TRUNC, rights FD_WRITE
    (if (i32.eq (i32.load8_u (local.get $arg)) (i32.const 102))
      (then
        (local.set $out (call $open (i32.const 3) (i32.const 8208) (i32.const 3)
                          (i32.const 9) (i64.const 64)))
        (loop $fill
          (if (call $write (local.get $out) (i32.const 16384) (i32.const 65536))
            (then (call $exit (i32.const 5))))
          (br $fill))))
    (local.set $out (call $open (i32.const 4) (i32.const 8192) (i32.const 10)
                      (i32.const 9) (i64.const 64)))
    (local.set $i (i32.const 1))
    (loop $args
      (local.set $arg (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 4)))))
      ;; rights FD_READ
      (local.set $in (call $open (i32.const 3) (local.get $arg) (call $strlen (local.get $arg))
                       (i32.const 0) (i64.const 2)))
      (loop $copy
        (i32.store (i32.const 0) (i32.const 16384))
        (i32.store (i32.const 4) (i32.const 65536))
        (if (call $fd_read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8))
          (then (call $exit (i32.const 6))))
        (local.set $n (i32.load (i32.const 8)))
        (if (local.get $n)
          (then
            (drop (call $write (i32.const 1) (i32.const 16384) (local.get $n)))
            (drop (call $write (local.get $out) (i32.const 16384) (local.get $n)))
            (br $copy))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $args (i32.lt_u (local.get $i) (local.get $argc))))))
