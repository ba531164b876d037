;; malformed_len: wsp_process writes one output record (index 0) whose
;; value_len (1000) runs past the end of its 32-byte chunk.
(module
  (import "wsp" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "wsp" "batch_write" (func $batch_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (i64.store (i32.const 0) (i64.const 0))
    (i64.store (i32.const 8) (i64.const 0))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 1000))
    (i64.store (i32.const 24) (i64.const 0))
    (call $batch_write (i32.const 0) (i32.const 32)))
)
