/**
 * The kernel's refusals. Every call that refuses its input throws a
 * {@link KernelError} whose `code` is a short upper-case word (the errno
 * illumos, FreeBSD or NetBSD would return, or a name for what they would panic on) and whose
 * message names the argument and its value. A refused call changes nothing.
 *
 * @module
 */

import { isPow2 } from "../machine/bits.ts";

/**
 * Every code a {@link KernelError} carries (README lists who raises each):
 *
 * - `EINVAL`: an argument out of range or of the wrong type.
 * - `ENOMEM`: no memory (pages, arena space, bounce pages) for a request that may not wait.
 * - `EFAULT`: an address no page maps (pmap, bus_dma, a driver's buffer).
 * - `EFBIG`: a DMA load that needs more segments than its tag allows.
 * - `EBUSY`: the object is in use (an arena with imports, a loaded map, a live tag).
 * - `EEXIST`, `ENOENT`: a name registered twice, or unknown.
 * - `ENODEV`, `ENXIO`: no device of that kind, or a device that did not answer.
 * - `EINTR`, `ECANCELED`: a waiting request aborted by its signal, or cancelled.
 * - `EDEADLK`: a sleeping request that nothing could ever satisfy.
 * - `WOULDBLOCK`: a sleeping request where no other thread can free (replay).
 * - `BADFREE`: a free of something not allocated, or with the wrong size.
 * - `BADOP`: a replay operation that does not exist or is malformed.
 * - `UNSUPPORTED`: a request this allocator does not have (FreeBSD's vmem: next-fit, contains).
 * - `BADARG`: the FreeBSD vmem trace format's word for a bad argument (EINVAL in the API).
 * - `BUSY`: the FreeBSD vmem trace format's word for an object in use (EBUSY in the API).
 * - `CORRUPT`: a `check()` found a broken invariant.
 */
export type KernelErrorCode =
  | "EINVAL"
  | "ENOMEM"
  | "EFAULT"
  | "EFBIG"
  | "EBUSY"
  | "EEXIST"
  | "ENOENT"
  | "ENODEV"
  | "ENXIO"
  | "EINTR"
  | "ECANCELED"
  | "EDEADLK"
  | "WOULDBLOCK"
  | "BADFREE"
  | "BADOP"
  | "UNSUPPORTED"
  | "BADARG"
  | "BUSY"
  | "CORRUPT";

/** An error with a machine-readable code, as replay and the boot log print it. */
export class KernelError extends Error {
  /** What kind of refusal this is: one of {@link KernelErrorCode}. */
  readonly code: KernelErrorCode;

  /** Creates an error with `code` and a message that names the offending value. */
  constructor(code: KernelErrorCode, message: string) {
    super(message);
    this.name = "KernelError";
    this.code = code;
  }
}

/** Largest address or size the kernel handles exactly: `2^53 - 1`. */
export const MAX_ADDR: number = Number.MAX_SAFE_INTEGER;

/**
 * Returns `value` when it is an integer in `[min, max]`, and throws an
 * `EINVAL` {@link KernelError} naming `name` and the value otherwise.
 */
export function checkInteger(
  name: string,
  value: unknown,
  min?: number,
  max?: number,
): number {
  if (min === undefined) min = 0;
  if (max === undefined) max = MAX_ADDR;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new KernelError(
      "EINVAL",
      `${name} must be an integer in [${min}, ${max}], got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * Refuses (EINVAL) a span no arena of either flavor takes: `base` not an
 * integer of at least `minBase`, `size` not a positive integer, an end past
 * `2^53 - 1`, or either not a multiple of `quantum`.
 */
export function checkSpan(base: number, size: number, quantum: number, minBase: number): void {
  checkInteger("base", base, minBase);
  checkInteger("size", size, 1);
  if (base + size > MAX_ADDR) {
    throw new KernelError(
      "EINVAL",
      `span [${describe(base)}, +${describe(size)}) ends past 2^53 - 1`,
    );
  }
  if (base % quantum !== 0 || size % quantum !== 0) {
    throw new KernelError(
      "EINVAL",
      `span [${describe(base)}, +${describe(size)}) is not aligned to quantum ${quantum}`,
    );
  }
}

/** Returns `value` when it is a power of two (an integer), else throws `EINVAL`. */
export function checkPowerOfTwo(name: string, value: unknown): number {
  const v = checkInteger(name, value, 1);
  if (!isPow2(v)) {
    throw new KernelError("EINVAL", `${name} must be a power of two, got ${v}`);
  }
  return v;
}

/**
 * A short printable rendering of any value for an error message; never
 * throws, whatever the value (a BigInt reads `8n`, a symbol `Symbol(x)`).
 */
export function describe(value: unknown): string {
  switch (typeof value) {
    case "number":
      return Number.isInteger(value) && value > 0xffff
        ? `${value} (0x${value.toString(16)})`
        : String(value);
    case "bigint":
      return `${value}n`;
    case "string":
      return JSON.stringify(value);
    case "symbol":
      return value.toString();
    case "function":
      return `function ${value.name || "(anonymous)"}`;
    case "undefined":
      return "undefined";
  }
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // A cycle, a BigInt inside, a toJSON that throws: fall back to the tag.
  }
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
