/**
 * The two ways the hardware says no.
 *
 * A {@link MachineFault} is what a real machine raises as a bus error or a
 * machine check: an access (by the CPU side, through RAM or the bus) touched an
 * address where nothing answers, or an address that is not an address at all.
 * It names the start of the access, its size and whether it was a read or a
 * write; the access it reports has changed nothing.
 *
 * A {@link MachineError} refuses a configuration or an argument that no
 * hardware could be given: a memory map whose regions overlap, a DMA
 * constraint that is not a power of two, a value too wide for a register. Its
 * `code` is a short upper-case word, as the kernel's own errors carry, so the
 * two sides print refusals alike.
 *
 * @module
 */

import { isPow2 } from "./bits.ts";

/** What an access was doing when it faulted. */
export type AccessKind = "read" | "write";

/** A physical access that reached no RAM (or no MMIO window). Nothing was changed. */
export class MachineFault extends Error {
  /** First byte of the refused access. */
  readonly addr: number;
  /** Length of the refused access in bytes. */
  readonly size: number;
  /** Whether the access was a read or a write. */
  readonly kind: AccessKind;
  /** What was wrong, in words (which byte decoded to nothing, and why). */
  readonly reason: string;

  /** Creates a fault for an access of `size` bytes at `addr`. */
  constructor(addr: number, size: number, kind: AccessKind, reason: string) {
    super(`${kind} of ${size} byte${size === 1 ? "" : "s"} at ${hex(addr)}: ${reason}`);
    this.name = "MachineFault";
    this.addr = addr;
    this.size = size;
    this.kind = kind;
    this.reason = reason;
  }
}

/**
 * Every code a {@link MachineError} carries:
 *
 * - `EINVAL`: an argument or configuration value out of range or of the wrong type.
 * - `ERANGE`: a value too wide for the register or field it is written to.
 * - `EBUSY`: a resource already taken (an MMIO window, an interrupt line).
 * - `ENOSPC`: no room left (the MMIO hole, the interrupt lines).
 * - `ENOMEM`: the host could not give the guest the memory asked for.
 * - `CORRUPT`: a `check()` found a broken invariant.
 */
export type MachineErrorCode = "EINVAL" | "ERANGE" | "EBUSY" | "ENOSPC" | "ENOMEM" | "CORRUPT";

/** A refused configuration or argument; `code` says which kind ({@link MachineErrorCode}). */
export class MachineError extends Error {
  /** What kind of refusal this is: one of {@link MachineErrorCode}. */
  readonly code: MachineErrorCode;

  /** Creates an error with `code` and a message naming the value refused. */
  constructor(code: MachineErrorCode, message: string) {
    super(message);
    this.name = "MachineError";
    this.code = code;
  }
}

/** Renders an address or value in hexadecimal (`0x1f000`), anything else printably. */
export function hex(value: unknown): string {
  if (typeof value === "number" && Number.isInteger(value)) {
    return value < 0 ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
  }
  if (typeof value === "bigint") return `0x${value.toString(16)}`;
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

/** Returns `value` when it is an integer in `[min, max]`; otherwise throws `EINVAL` naming `name`. */
export function checkInt(
  name: string,
  value: unknown,
  min?: number,
  max?: number,
): number {
  if (min === undefined) min = 0;
  if (max === undefined) max = Number.MAX_SAFE_INTEGER;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new MachineError(
      "EINVAL",
      `${name} must be an integer in [${hex(min)}, ${hex(max)}], got ${hex(value)}`,
    );
  }
  return value;
}

/** Returns `value` when it is a power of two in `[1, max]`; otherwise throws `EINVAL`. */
export function checkPow2(
  name: string,
  value: unknown,
  max?: number,
): number {
  if (max === undefined) max = 2 ** 52;
  const v = checkInt(name, value, 1, max);
  if (!isPow2(v)) throw new MachineError("EINVAL", `${name} must be a power of two, got ${hex(v)}`);
  return v;
}
