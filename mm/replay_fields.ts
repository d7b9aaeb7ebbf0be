/**
 * Reading the fields of a trace operation (a parsed JSON object): each
 * reader refuses a missing or ill-typed field with an EINVAL KernelError
 * naming the field and what it held.
 *
 * @module
 */

import { describe, KernelError, MAX_ADDR } from "./errors.ts";

/** A trace operation: a parsed JSON object. */
export type TraceOp = Record<string, unknown>;

/** The value of field `name`; EINVAL when the operation lacks it. */
export function field(op: TraceOp, name: string): unknown {
  if (!(name in op)) throw new KernelError("EINVAL", `missing field "${name}"`);
  return op[name];
}

/** Field `name` as an integer in `[min, 2^53 - 1]` (`min` 0 when left out). */
export function intField(op: TraceOp, name: string, min?: number): number {
  const v = field(op, name);
  const lo = min ?? 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > MAX_ADDR) {
    throw new KernelError(
      "EINVAL",
      `"${name}" must be an integer in [${lo}, 2^53 - 1], got ${describe(v)}`,
    );
  }
  return v;
}

/** Field `name` as a string. */
export function stringField(op: TraceOp, name: string): string {
  const v = field(op, name);
  if (typeof v !== "string") {
    throw new KernelError("EINVAL", `"${name}" must be a string, got ${describe(v)}`);
  }
  return v;
}

/** Field `name` as a list of distinct words, each one of `allowed`. */
export function wordsField(op: TraceOp, name: string, allowed: readonly string[]): string[] {
  const v = field(op, name);
  if (!Array.isArray(v)) {
    throw new KernelError("EINVAL", `"${name}" must be a list of words, got ${describe(v)}`);
  }
  const out: string[] = [];
  for (const w of v) {
    if (typeof w !== "string" || !allowed.includes(w)) {
      throw new KernelError("EINVAL", `"${name}" has an unknown word ${describe(w)}`);
    }
    if (out.includes(w)) throw new KernelError("EINVAL", `"${name}" repeats ${describe(w)}`);
    out.push(w);
  }
  return out;
}
