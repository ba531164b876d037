;; loop: wsp_process never returns.
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32)
    (loop $forever (br $forever))
    unreachable)
)
