;; loop.wat: spins forever without calling the host. Used to check that the
;; CPU limit, the wall-clock limit and cancellation stop a guest that never
;; yields by itself.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever
      (br $forever))))
