;; noop_same: keeps every record unchanged through full 32-byte emit headers
;; (not keep records): index i, port 0, kind emit, flags
;; same_key|same_value|same_time|same_meta plus has_time/has_key of the input, all
;; lengths 0. Visits every input record header; one batch_write at the end.
;; Exercises the host's same_* path (noop_keep uses 8-byte keep records).
(module
  (import "wsp" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "wsp" "batch_write" (func $batch_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wsp_abi") (result i64) (i64.const 1))
  ;; $read copies the staged batch to $IN (1024) and returns where the output
  ;; goes (after the batch, 8-aligned). Memory grows so that the batch and an
  ;; output of up to (batch size + 64 * n) bytes fit; if the batch did not fit
  ;; the first time, batch_read is called again.
  (global $IN i32 (i32.const 1024))
  (func $read (param $n i32) (result i32)
    (local $cap i32) (local $size i32) (local $out i32) (local $need i32)
    (local.set $cap (i32.sub (i32.mul (memory.size) (i32.const 65536)) (global.get $IN)))
    (local.set $size (call $batch_read (global.get $IN) (local.get $cap)))
    (if (i32.gt_u (local.get $size) (i32.const 0x7fffffff))
      (then unreachable)) ;; a negative error
    (local.set $out (i32.and (i32.add (i32.add (global.get $IN) (local.get $size)) (i32.const 7))
                             (i32.const -8)))
    (local.set $need (i32.add (i32.add (local.get $out) (local.get $size))
                              (i32.shl (local.get $n) (i32.const 6))))
    (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $need) (i32.const 65535))
                                                     (i32.const 16))
                                          (memory.size)))
                    (i32.const -1))
          (then unreachable))))
    (if (i32.gt_u (local.get $size) (local.get $cap))
      (then
        (drop (call $batch_read (global.get $IN) (local.get $size)))))
    (local.get $out))
  (func (export "wsp_process") (param $n i32) (result i32)
    (local $i i32) (local $p i32) (local $o i32) (local $out i32) (local $flags i32)
    (local.set $out (call $read (local.get $n)))
    (local.set $o (local.get $out))
    (local.set $p (i32.add (global.get $IN) (i32.const 8)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $flags (i32.load8_u offset=7 (local.get $p)))
        (i32.store (local.get $o) (local.get $i))
        (i32.store offset=4 (local.get $o) (i32.shl (i32.or (i32.const 0xf0) (i32.and (local.get $flags) (i32.const 3))) (i32.const 24)))
        (i64.store offset=8 (local.get $o) (i64.const 0))
        (i32.store offset=16 (local.get $o) (i32.const 0))
        (i32.store offset=20 (local.get $o) (i32.const 0))
        (i64.store offset=24 (local.get $o) (i64.const 0))
        (local.set $o (i32.add (local.get $o) (i32.const 32)))
        ;; next input record: header, key, value, meta, fields
        (local.set $p (i32.add (local.get $p)
          (i32.add (i32.const 32)
            (i32.add (i32.add (i32.load offset=16 (local.get $p)) (i32.load offset=20 (local.get $p)))
                     (i32.add (i32.load offset=24 (local.get $p)) (i32.load offset=28 (local.get $p)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; one batch_write for the whole output; its result (0 or a negative
    ;; error) is the export's
    (call $batch_write (local.get $out) (i32.sub (local.get $o) (local.get $out))))
)
