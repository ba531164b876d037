;; loop_reader: reads its batch, then loops forever. It imports batch_read,
;; so the host's load-time rewrite (not wazero's termination mode) must stop
;; it at the time limit.
(module
  (import "wsp" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (drop (call $batch_read (i32.const 0) (i32.const 0)))
    (loop $l (br $l))
    (i32.const 0)))
