;; missing_abi: a reactor with memory and wsp_process but no wsp_abi.
(module
  (memory (export "memory") 2)
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0))
)
