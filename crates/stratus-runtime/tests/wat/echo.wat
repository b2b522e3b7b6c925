;; Prints every argument ("arg=..."), every environment variable ("env=...")
;; and then stdin ("stdin=..." per chunk read), one per line; exits 0.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  ;; 0..12: read iovec + nread   16..24: counts   32..44: write iovec + nwritten
  ;; 64..: text   1024..16384: pointers   65536..131072: strings
  ;; 131072..196608: stdin buffer
  (memory (export "memory") 4)
  (data (i32.const 64) "arg=")
  (data (i32.const 72) "env=")
  (data (i32.const 80) "stdin=")
  (data (i32.const 88) "\n")

  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 32) (local.get $ptr))
    (i32.store (i32.const 36) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))))

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Prints prefix then each of the count strings pointed to from 1024.
  (func $print_all (param $prefix i32) (param $prefix_len i32) (param $count i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
        (call $print (local.get $prefix) (local.get $prefix_len))
        (call $print (local.get $s) (call $strlen (local.get $s)))
        (call $print (i32.const 88) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func $check_sizes
    (if (i32.or (i32.gt_u (i32.load (i32.const 16)) (i32.const 3800))
                (i32.gt_u (i32.load (i32.const 20)) (i32.const 65536)))
      (then unreachable)))

  (func (export "_start")
    (local $n i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (call $check_sizes)
    (drop (call $args_get (i32.const 1024) (i32.const 65536)))
    (call $print_all (i32.const 64) (i32.const 4) (i32.load (i32.const 16)))

    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (call $check_sizes)
    (drop (call $environ_get (i32.const 1024) (i32.const 65536)))
    (call $print_all (i32.const 72) (i32.const 4) (i32.load (i32.const 16)))

    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.const 131072))
        (i32.store (i32.const 4) (i32.const 65536))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (call $print (i32.const 80) (i32.const 6))
        (call $print (i32.const 131072) (local.get $n))
        (call $print (i32.const 88) (i32.const 1))
        (br $more)))))
