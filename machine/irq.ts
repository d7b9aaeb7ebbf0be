/**
 * The interrupt controller.
 *
 * Theory. A fixed number of level-triggered lines. A device drives its line
 * through an {@link IrqLine}: `raise()` asserts it, `lower()` deasserts it
 * (usually when the driver acknowledges the cause in a status register).
 * The kernel registers one handler per line with {@link
 * InterruptController.establish} and masks or unmasks lines.
 *
 * Delivery is not synchronous: raising a line only marks it asserted, as
 * a real line into a real controller does, and never calls kernel code from
 * inside a device's register store. The kernel drains interrupts at points
 * of its choosing (its interrupt window) with {@link
 * InterruptController.deliver}, which calls, lowest line first, the handler
 * of each line that is asserted, unmasked and established, once per call.
 * A line a handler leaves asserted is delivered again by the next call, as
 * a level-triggered line would fire again. A line asserted with no handler
 * stays pending and is counted as stray by each `deliver`.
 *
 * Data structures: per line, its level, mask bit and counters in typed
 * arrays; handlers in a plain array. Invariants (see {@link
 * InterruptController.check}): levels and masks are 0 or 1; the pending
 * count equals the number of asserted lines. Cost: `raise`/`lower` O(1);
 * `deliver` O(lines) when anything is asserted, O(1) when nothing is.
 *
 * @module
 */

import { checkInt, MachineError } from "./errors.ts";

/** A kernel interrupt handler; it receives the line number. */
export type InterruptHandler = (line: number) => void;

/** The device's end of one interrupt line. */
export class IrqLine {
  /** The line number. */
  readonly line: number;
  readonly #ctl: InterruptController;

  /** Wraps line `line` of `ctl` (see {@link InterruptController.line}). */
  constructor(ctl: InterruptController, line: number) {
    this.#ctl = ctl;
    this.line = line;
  }

  /** Asserts the line. */
  raise(): void {
    this.#ctl.setLevel(this.line, true);
  }

  /** Deasserts the line. */
  lower(): void {
    this.#ctl.setLevel(this.line, false);
  }

  /** Drives the line to `level`. */
  set(level: boolean): void {
    this.#ctl.setLevel(this.line, level);
  }

  /** Whether the line is asserted. */
  get asserted(): boolean {
    return this.#ctl.isAsserted(this.line);
  }
}

/** A controller of level-triggered interrupt lines, drained by the kernel. */
export class InterruptController {
  /** Number of lines. */
  readonly lineCount: number;
  /** Per line: times it went from deasserted to asserted. */
  readonly raised: Float64Array;
  /** Per line: handler calls made for it. */
  readonly delivered: Float64Array;
  /** Asserted lines found with no handler, summed over `deliver` calls. */
  stray = 0;

  readonly #level: Uint8Array;
  readonly #masked: Uint8Array;
  readonly #handlers: (InterruptHandler | undefined)[];
  readonly #owners: string[];
  #asserted = 0;
  #next = 0;

  /** Creates a controller with `lines` lines (default 32), all deasserted and unmasked. */
  constructor(lines?: number) {
    if (lines === undefined) lines = 32;
    this.lineCount = checkInt("lines", lines, 1, 1024);
    this.#level = new Uint8Array(lines);
    this.#masked = new Uint8Array(lines);
    this.raised = new Float64Array(lines);
    this.delivered = new Float64Array(lines);
    this.#handlers = new Array(lines).fill(undefined);
    this.#owners = new Array(lines).fill("");
  }

  /** Hands out the next unused line (for attaching a device); `ENOSPC` when all are used. */
  allocateLine(): IrqLine {
    if (this.#next >= this.lineCount) {
      throw new MachineError("ENOSPC", `all ${this.lineCount} interrupt lines are taken`);
    }
    return new IrqLine(this, this.#next++);
  }

  /** The device end of line `n`. */
  line(n: number): IrqLine {
    this.#check(n);
    return new IrqLine(this, n);
  }

  /** Drives line `n` to `level` (what {@link IrqLine} calls). */
  setLevel(n: number, level: boolean): void {
    this.#check(n);
    const v = level ? 1 : 0;
    if (this.#level[n] === v) return;
    this.#level[n] = v;
    if (v) {
      this.#asserted++;
      this.raised[n]!++;
    } else {
      this.#asserted--;
    }
  }

  /** Whether line `n` is asserted. */
  isAsserted(n: number): boolean {
    this.#check(n);
    return this.#level[n] === 1;
  }

  /**
   * Registers `handler` for line `n` on behalf of `owner` (a driver's name,
   * for {@link established}); `EBUSY` when the line already has one.
   */
  establish(n: number, handler: InterruptHandler, owner?: string): void {
    if (owner === undefined) owner = "";
    this.#check(n);
    if (typeof handler !== "function") {
      throw new MachineError("EINVAL", `handler for line ${n} must be a function`);
    }
    if (this.#handlers[n] !== undefined) {
      throw new MachineError("EBUSY", `interrupt line ${n} already has a handler`);
    }
    this.#handlers[n] = handler;
    this.#owners[n] = String(owner);
  }

  /** The lines that have a handler, with the owner named when it was established. */
  established(): { line: number; owner: string }[] {
    const out: { line: number; owner: string }[] = [];
    for (let n = 0; n < this.lineCount; n++) {
      if (this.#handlers[n] !== undefined) out.push({ line: n, owner: this.#owners[n]! });
    }
    return out;
  }

  /** Removes the handler of line `n`; `EINVAL` when it has none. */
  disestablish(n: number): void {
    this.#check(n);
    if (this.#handlers[n] === undefined) {
      throw new MachineError("EINVAL", `interrupt line ${n} has no handler`);
    }
    this.#handlers[n] = undefined;
    this.#owners[n] = "";
  }

  /** Stops delivery of line `n` (its level is still tracked). */
  mask(n: number): void {
    this.#check(n);
    this.#masked[n] = 1;
  }

  /** Resumes delivery of line `n`. */
  unmask(n: number): void {
    this.#check(n);
    this.#masked[n] = 0;
  }

  /** True when some line is asserted and unmasked (whether or not it has a handler). */
  pending(): boolean {
    if (this.#asserted === 0) return false;
    for (let n = 0; n < this.lineCount; n++) {
      if (this.#level[n] === 1 && this.#masked[n] === 0) return true;
    }
    return false;
  }

  /**
   * Calls the handler of every asserted, unmasked, established line once,
   * lowest line first; returns how many handlers ran.
   */
  deliver(): number {
    if (this.#asserted === 0) return 0;
    let ran = 0;
    for (let n = 0; n < this.lineCount; n++) {
      if (this.#level[n] === 0 || this.#masked[n] === 1) continue;
      const h = this.#handlers[n];
      if (h === undefined) {
        this.stray++;
        continue;
      }
      this.delivered[n]!++;
      ran++;
      h(n);
    }
    return ran;
  }

  /** Verifies levels, masks and the asserted count. */
  check(): void {
    let up = 0;
    for (let n = 0; n < this.lineCount; n++) {
      if (this.#level[n]! > 1 || this.#masked[n]! > 1) {
        throw new MachineError("CORRUPT", `Irq.check: line ${n} flags`);
      }
      up += this.#level[n]!;
    }
    if (up !== this.#asserted) {
      throw new MachineError("CORRUPT", `Irq.check: ${up} lines up, ${this.#asserted} counted`);
    }
  }

  #check(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n >= this.lineCount) {
      checkInt("line", n, 0, this.lineCount - 1);
    }
  }
}
