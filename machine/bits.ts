/**
 * Bit arithmetic on the integers addresses and registers are kept in:
 * doubles exact up to `2^53`, of which the 32-bit operators see only the low
 * word.
 *
 * @module
 */

/** 2^32: the weight of the high word of a 64-bit register pair or address. */
export const TWO32 = 4294967296;

/** The largest C `int` (and int32): 2^31 - 1. */
export const INT_MAX = 0x7fffffff;

/**
 * The position of the highest set bit, counting from 1 (illumos `highbit`,
 * FreeBSD `flsl`); 0 for 0. `x` is a non-negative integer below `2^64`.
 */
export function highbit(x: number): number {
  if (x < TWO32) return 32 - Math.clz32(x);
  return 64 - Math.clz32(Math.floor(x / TWO32));
}

/** True when `v` is a positive integer power of two (any type may be asked; exact up to `2^53`). */
export function isPow2(v: number): boolean {
  if (typeof v !== "number") return false;
  // An integer below 2^32 survives `>>> 0` unchanged; nothing else does.
  if (v >>> 0 === v) return v !== 0 && (v & (v - 1)) === 0;
  return v >= TWO32 && v <= 2 ** 53 && Number.isInteger(v) &&
    2 ** (highbit(v) - 1) === v;
}

/** Turns four ASCII characters into an ID register value (first character in the low byte). */
export function fourcc(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) |
    (s.charCodeAt(3) << 24)) >>> 0;
}
