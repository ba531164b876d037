;; oob_read: wsp_process calls batch_read with ptr 0xFFFFFFF0 and cap 1000
;; (outside memory; the host faults only when the batch fits in 1000 bytes,
;; since otherwise batch_read copies nothing).
(module
  (import "wsp" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "wsp" "batch_write" (func $batch_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (drop (call $batch_read (i32.const 0xfffffff0) (i32.const 1000)))
    (i32.const 0))
)
