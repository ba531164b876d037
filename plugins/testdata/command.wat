;; command: a WASI command module: exports only _start and memory.
(module
  (memory (export "memory") 2)
  (func (export "_start"))
)
