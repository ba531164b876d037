;; init_fails: wsp_init calls fail("bad config") and returns 1.
(module
  (import "wsp" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "bad config")
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_init") (result i32)
    (call $fail (i32.const 16) (i32.const 10))
    (i32.const 1))
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0))
)
