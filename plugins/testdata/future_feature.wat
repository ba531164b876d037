;; future_feature: wsp_abi returns version 1 with feature bit 10, which a v1
;; host does not know.
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.or (i64.const 1) (i64.shl (i64.const 1024) (i64.const 32))))
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0))
)
