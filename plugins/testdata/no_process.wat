;; no_process: wsp_abi and memory, but no wsp_process.
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
)
