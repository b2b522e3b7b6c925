;; hello.wat: prints "Hello, <first argument>!" ("Hello, world!" without one)
;; and exits 0. A WASI preview 1 command, the WAT twin of hello/.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  ;; 0..12: iovec + nwritten   16..24: argc, argv buffer size
  ;; 64..: text   1024..2048: argv pointers   2048..65536: argv strings
  (memory (export "memory") 1)
  (data (i32.const 64) "Hello, ")
  (data (i32.const 80) "world")
  (data (i32.const 96) "!\n")

  ;; Writes len bytes at ptr to stdout.
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Length of the NUL-terminated string at p.
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func (export "_start")
    (local $arg i32)
    (call $print (i32.const 64) (i32.const 7))
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.and
          (i32.and (i32.ge_u (i32.load (i32.const 16)) (i32.const 2))
                   (i32.le_u (i32.load (i32.const 16)) (i32.const 256)))
          (i32.le_u (i32.load (i32.const 20)) (i32.const 63488)))
      (then
        (drop (call $args_get (i32.const 1024) (i32.const 2048)))
        (local.set $arg (i32.load (i32.const 1028)))
        (call $print (local.get $arg) (call $strlen (local.get $arg))))
      (else
        (call $print (i32.const 80) (i32.const 5))))
    (call $print (i32.const 96) (i32.const 2))))
