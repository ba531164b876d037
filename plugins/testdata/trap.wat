;; trap: wsp_process executes unreachable.
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32) unreachable)
)
