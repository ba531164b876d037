;; future_feature: wsp_abi returns version 1 with feature bit 3 (state), which a
;; v1 host does not implement.
(module
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.or (i64.const 1) (i64.shl (i64.const 8) (i64.const 32))))
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0))
)
