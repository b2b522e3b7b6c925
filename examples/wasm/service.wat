;; service.wat: a long-running service without HTTP. Forever: every interval
;; (first argument, in ms; default 1000) it appends "tick N" to
;; /output/ticks.log and prints the same line to stdout. It never exits.
;; Without an /output preopen it warns on stderr and only prints.
;; The WAT twin of service/.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))

  ;; 0..12: iovec + nwritten   12: opened fd   16..24: argc, argv size / prestat
  ;; 48..56: preopen name   64..96, 256..300: text   128..176: clock subscription
  ;; 192..224: event   512..544: digits   600..: the line being built
  ;; 1024..2048: argv pointers   2048..65536: argv strings
  (memory (export "memory") 1)
  (data (i32.const 64) "/output")
  (data (i32.const 72) "ticks.log")
  (data (i32.const 256) "service: no /output preopen, printing only\n")
  (data (i32.const 600) "tick ")

  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

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

  ;; The fd of the preopen named "/output", or -1.
  (func $find_output (result i32)
    (local $fd i32)
    (local.set $fd (i32.const 3))
    (block $none
      (loop $next
        (br_if $none (call $fd_prestat_get (local.get $fd) (i32.const 16)))
        (if (i32.eq (i32.load (i32.const 20)) (i32.const 7))
          (then
            (drop (call $fd_prestat_dir_name (local.get $fd) (i32.const 48) (i32.const 7)))
            ;; compare 7 bytes as two overlapping 4-byte words
            (if (i32.and
                  (i32.eq (i32.load (i32.const 48)) (i32.load (i32.const 64)))
                  (i32.eq (i32.load (i32.const 51)) (i32.load (i32.const 67))))
              (then (return (local.get $fd))))))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br $next)))
    (i32.const -1))

  ;; Writes "tick n\n" at 600 and returns its length.
  (func $line (param $n i32) (result i32)
    (local $p i32) (local $len i32)
    (local.set $p (i32.const 544))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (local.set $len (i32.sub (i32.const 544) (local.get $p)))
    (memory.copy (i32.const 605) (local.get $p) (local.get $len))
    (i32.store8 (i32.add (i32.const 605) (local.get $len)) (i32.const 10))
    (i32.add (local.get $len) (i32.const 6)))

  ;; Sleeps ms milliseconds on the monotonic clock.
  (func $sleep (param $ms i32)
    (memory.fill (i32.const 128) (i32.const 0) (i32.const 48))
    (i32.store (i32.const 144) (i32.const 1))
    (i64.store (i32.const 152)
      (i64.mul (i64.extend_i32_u (local.get $ms)) (i64.const 1000000)))
    (drop (call $poll_oneoff (i32.const 128) (i32.const 192) (i32.const 1) (i32.const 8))))

  (func (export "_start")
    (local $interval i32) (local $dir i32) (local $log i32) (local $tick i32) (local $len i32)
    (local.set $interval (i32.const 1000))
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.and
          (i32.and (i32.ge_u (i32.load (i32.const 16)) (i32.const 2))
                   (i32.le_u (i32.load (i32.const 16)) (i32.const 256)))
          (i32.le_u (i32.load (i32.const 20)) (i32.const 63488)))
      (then
        (drop (call $args_get (i32.const 1024) (i32.const 2048)))
        (local.set $interval (call $atoi (i32.load (i32.const 1028))))))

    (local.set $log (i32.const -1))
    (local.set $dir (call $find_output))
    (if (i32.ge_s (local.get $dir) (i32.const 0))
      (then
        ;; oflags CREAT, rights FD_WRITE, fdflags APPEND
        (if (i32.eqz (call $path_open (local.get $dir) (i32.const 0)
                       (i32.const 72) (i32.const 9) (i32.const 1)
                       (i64.const 64) (i64.const 0) (i32.const 1) (i32.const 12)))
          (then (local.set $log (i32.load (i32.const 12)))))))
    (if (i32.lt_s (local.get $log) (i32.const 0))
      (then (call $write (i32.const 2) (i32.const 256) (i32.const 43))))

    (loop $forever
      (local.set $tick (i32.add (local.get $tick) (i32.const 1)))
      (local.set $len (call $line (local.get $tick)))
      (if (i32.ge_s (local.get $log) (i32.const 0))
        (then (call $write (local.get $log) (i32.const 600) (local.get $len))))
      (call $write (i32.const 1) (i32.const 600) (local.get $len))
      (call $sleep (local.get $interval))
      (br $forever))))
