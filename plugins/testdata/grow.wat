;; grow: wsp_process asks for 4096 more pages (256 MiB); when the host's
;; memory limit refuses them (memory.grow returns -1) it traps, otherwise it
;; emits nothing. The host's tests use it to check the memory limit.
(module
  (import "wsp" "batch_write" (func $batch_write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1))
      (then unreachable))
    (i32.const 0)))
