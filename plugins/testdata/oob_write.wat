;; oob_write: wsp_process calls batch_write(0, memory size + 1).
(module
  (import "wsp" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "wsp" "batch_write" (func $batch_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (call $batch_write (i32.const 0) (i32.add (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))))
)
