;; cpu.wat: CPU-bound work. Counts the primes up to N (first argument,
;; default 100000) by trial division and prints "primes up to N: COUNT".
;; The WAT twin of cpu/.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  ;; 0..12: iovec + nwritten   16..24: argc, argv buffer size
  ;; 64..: text   512..544: digits   1024..2048: argv pointers
  ;; 2048..65536: argv strings
  (memory (export "memory") 1)
  (data (i32.const 64) "primes up to ")
  (data (i32.const 80) ": ")
  (data (i32.const 96) "\n")

  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Prints n in decimal.
  (func $print_u32 (param $n i32)
    (local $p i32)
    (local.set $p (i32.const 544))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $print (local.get $p) (i32.sub (i32.const 544) (local.get $p))))

  ;; Parses the decimal digits at p (stops at the first non-digit).
  (func $atoi (param $p i32) (result i32)
    (local $n i32) (local $c i32)
    (block $done
      (loop $next
        (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
        (br_if $done (i32.ge_u (local.get $c) (i32.const 10)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $c)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func $is_prime (param $n i32) (result i32)
    (local $d i32)
    (if (i32.lt_u (local.get $n) (i32.const 2))
      (then (return (i32.const 0))))
    (local.set $d (i32.const 2))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (local.get $d) (i32.div_u (local.get $n) (local.get $d))))
        (if (i32.eqz (i32.rem_u (local.get $n) (local.get $d)))
          (then (return (i32.const 0))))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  (func (export "_start")
    (local $limit i32) (local $i i32) (local $count i32)
    (local.set $limit (i32.const 100000))
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.and
          (i32.and (i32.ge_u (i32.load (i32.const 16)) (i32.const 2))
                   (i32.le_u (i32.load (i32.const 16)) (i32.const 256)))
          (i32.le_u (i32.load (i32.const 20)) (i32.const 63488)))
      (then
        (drop (call $args_get (i32.const 1024) (i32.const 2048)))
        (local.set $limit (call $atoi (i32.load (i32.const 1028))))))
    (local.set $i (i32.const 2))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (local.get $i) (local.get $limit)))
        (local.set $count (i32.add (local.get $count) (call $is_prime (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $print (i32.const 64) (i32.const 13))
    (call $print_u32 (local.get $limit))
    (call $print (i32.const 80) (i32.const 2))
    (call $print_u32 (local.get $count))
    (call $print (i32.const 96) (i32.const 1))))
