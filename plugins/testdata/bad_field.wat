;; bad_field: wsp_init declares the field path "a..b" (an empty segment). The
;; host refuses it with -5; the guest then fails its init with the code in the
;; message, so the load error shows what the host said.
(module
  (import "wsp" "declare_fields" (func $declare (param i32 i32) (result i32)))
  (import "wsp" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "a..b")
  (data (i32.const 32) "declare_fields refused a..b")
  (func (export "wsp_abi") (result i64) (i64.const 0x0000000100000001))
  (func (export "wsp_init") (result i32)
    (if (i32.eq (call $declare (i32.const 16) (i32.const 4)) (i32.const -5))
      (then (call $fail (i32.const 32) (i32.const 27)) (return (i32.const 1))))
    (i32.const 0))
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0)))
