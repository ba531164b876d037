;; clear_stop: an invalid module (it writes global 0, which it does not
;; declare) that would, after the host's loop rewrite added its countdown
;; global at index 0, keep resetting it so the deadline is never checked,
;; and loop forever. Built with `wat2wasm --no-check`. The host must refuse
;; it at load.
(module
  (import "wsp" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (loop $l
      (global.set 0 (i32.const 100))
      (br $l))
    (i32.const 0)))
