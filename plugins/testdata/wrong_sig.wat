;; wrong_sig: wsp_process has type () -> () instead of (i32) -> i32.
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process"))
)
