;; bad_version: wsp_abi returns 2 (ABI version 2, no features).
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 2))
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0))
)
