;; start_loop: a module whose start function loops forever. A start
;; function runs during instantiation, outside any time limit, so the host
;; refuses modules with a start section.
(module
  (memory (export "memory") 1)
  (func $forever (loop $l (br $l)))
  (start $forever)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  (func (export "wsp_process") (param $n i32) (result i32) (i32.const 0)))
