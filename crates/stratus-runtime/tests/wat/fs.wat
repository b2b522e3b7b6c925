;; Probes the filesystem sandbox. Expects /input as fd 3 and /output as fd 4.
;; Prints one line per probe, "<probe> ok" or "<probe> denied", and the
;; content of /input/data.txt after "content: ".
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close"
    (func $fd_close (param i32) (result i32)))

  ;; 0..12: file iovec + count   12: opened fd   32..44: print iovec + nwritten
  ;; 256..600: text   4096..5120: read buffer
  (memory (export "memory") 1)
  (data (i32.const 256) "data.txt")
  (data (i32.const 272) "result.txt")
  (data (i32.const 288) "../secret.txt")
  (data (i32.const 304) "/etc/passwd")
  (data (i32.const 320) "link")
  (data (i32.const 336) "new.txt")
  (data (i32.const 352) "../escape.txt")
  (data (i32.const 368) "written by guest\n")
  (data (i32.const 400) " ok\n")
  (data (i32.const 416) " denied\n")
  (data (i32.const 432) "read_input")
  (data (i32.const 448) "write_output")
  (data (i32.const 464) "dotdot")
  (data (i32.const 480) "absolute")
  (data (i32.const 496) "symlink")
  (data (i32.const 512) "write_input")
  (data (i32.const 528) "output_escape")
  (data (i32.const 544) "bad_fd")
  (data (i32.const 560) "content: ")

  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 32) (local.get $ptr))
    (i32.store (i32.const 36) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))))

  (func $report (param $name i32) (param $len i32) (param $errno i32)
    (call $print (local.get $name) (local.get $len))
    (if (i32.eqz (local.get $errno))
      (then (call $print (i32.const 400) (i32.const 4)))
      (else (call $print (i32.const 416) (i32.const 8)))))

  ;; path_open(dir, path) with oflags and base rights; the fd goes to 12.
  (func $open (param $dir i32) (param $path i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (call $path_open (local.get $dir) (i32.const 0) (local.get $path) (local.get $len)
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 12)))

  (func (export "_start")
    (local $e i32) (local $fd i32) (local $n i32)
    ;; read /input/data.txt (rights FD_READ = 2)
    (local.set $e (call $open (i32.const 3) (i32.const 256) (i32.const 8) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 432) (i32.const 10) (local.get $e))
    (if (i32.eqz (local.get $e))
      (then
        (local.set $fd (i32.load (i32.const 12)))
        (i32.store (i32.const 0) (i32.const 4096))
        (i32.store (i32.const 4) (i32.const 1024))
        (drop (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (call $print (i32.const 560) (i32.const 9))
        (call $print (i32.const 4096) (local.get $n))
        (drop (call $fd_close (local.get $fd)))))

    ;; create /output/result.txt (oflags CREAT|TRUNC = 9, rights FD_WRITE = 64)
    (local.set $e (call $open (i32.const 4) (i32.const 272) (i32.const 10) (i32.const 9) (i64.const 64)))
    (if (i32.eqz (local.get $e))
      (then
        (local.set $fd (i32.load (i32.const 12)))
        (i32.store (i32.const 0) (i32.const 368))
        (i32.store (i32.const 4) (i32.const 17))
        (local.set $e (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (drop (call $fd_close (local.get $fd)))))
    (call $report (i32.const 448) (i32.const 12) (local.get $e))

    ;; escapes, all of which must fail
    (call $report (i32.const 464) (i32.const 6)
      (call $open (i32.const 3) (i32.const 288) (i32.const 13) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 480) (i32.const 8)
      (call $open (i32.const 3) (i32.const 304) (i32.const 11) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 496) (i32.const 7)
      (call $open (i32.const 3) (i32.const 320) (i32.const 4) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 512) (i32.const 11)
      (call $open (i32.const 3) (i32.const 336) (i32.const 7) (i32.const 1) (i64.const 64)))
    (call $report (i32.const 528) (i32.const 13)
      (call $open (i32.const 4) (i32.const 352) (i32.const 13) (i32.const 1) (i64.const 64)))
    (call $report (i32.const 544) (i32.const 6)
      (call $open (i32.const 5) (i32.const 305) (i32.const 10) (i32.const 0) (i64.const 2)))))
