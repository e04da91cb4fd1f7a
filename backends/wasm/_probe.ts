// Feature probes: a module of one function `() -> v128` around a few
// instruction bytes, which the engine either validates or rejects. Built here
// rather than by the kernel encoder so a probe does not depend on the code it
// guards.
import { uleb } from "./_encoder.ts";

/** `v128.const 0`. */
const V128_ZERO = [0xfd, 12, ...new Array<number>(16).fill(0)];

/** The instructions a SIMD kernel needs at least: a v128 constant. */
export const SIMD_CODE: readonly number[] = V128_ZERO;

/** Relaxed SIMD's fused multiply-add of three v128 constants (`f32x4.relaxed_madd`). */
export const RELAXED_MADD_CODE: readonly number[] = [
  ...V128_ZERO,
  ...V128_ZERO,
  ...V128_ZERO,
  0xfd,
  0x85,
  0x02,
];

function v128Module(code: readonly number[]): Uint8Array<ArrayBuffer> {
  const body = [0, /* no locals */ ...code, 0x0b /* end */];
  const section = [1, /* one function */ ...uleb(body.length), ...body];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0], // "\0asm", version 1
    ...[1, 5, 1, 0x60, 0, 1, 0x7b], // type section: () -> v128
    ...[3, 2, 1, 0], // function section: one function of type 0
    10,
    ...uleb(section.length),
    ...section,
  ]);
}

/** Whether this engine validates a function made of `code`. */
export function validates(code: readonly number[]): boolean {
  try {
    return WebAssembly.validate(v128Module(code));
  } catch {
    return false;
  }
}
