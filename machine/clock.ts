/**
 * The machine's clock: virtual time, and the device work queued on it.
 *
 * Theory. A device that completes later (a disk command, a frame on the
 * wire) queues its work with {@link Clock.schedule} at some nanoseconds from
 * now; the clock runs queued work in time order (work due at the same time
 * in the order it was queued). It runs between the kernel's own steps: once
 * something is queued, a host microtask starts the next event, and after
 * each event the machine's CPU takes the interrupts it raised (the
 * `afterEvent` hook, which delivers them) before the next event runs, so a
 * driver woken by an interrupt may act before later work does. Virtual time
 * moves only by running events, jumping to each event's time: a run costs
 * host time in proportion to the work done, never to the latencies
 * modelled. {@link Clock.run} runs everything queued at once, for callers
 * that step the machine themselves (tests, benchmarks).
 *
 * Work that throws (or an interrupt handler it woke that throws) is
 * recorded (see {@link Clock.errors}), not rethrown into the host's event
 * loop; {@link Clock.check} reports it.
 *
 * Data structures: events in time order in parallel arrays (time, sequence
 * number, id, callback); queues stay short (one event per busy device), so
 * an insertion is a shift of the few later events. Invariants: times are
 * non-decreasing, none earlier than `now`. Cost: schedule and cancel
 * O(events queued); running an event O(1) plus its work.
 *
 * @module
 */

import { checkInt, MachineError } from "./errors.ts";

/** The machine's virtual time and its queue of device work. */
export class Clock {
  /** Virtual nanoseconds since power-on. */
  now = 0;
  /** Events run since power-on. */
  ran = 0;
  /** Messages of work that threw (the first few). */
  readonly errors: string[] = [];

  readonly #afterEvent: () => void;
  #time: number[] = [];
  #id: number[] = [];
  #fn: (() => void)[] = [];
  #nextId = 1;
  #started = false;

  /** A clock at time 0; `afterEvent` runs after each event (the machine delivers interrupts there). */
  constructor(afterEvent?: () => void) {
    if (afterEvent === undefined) afterEvent = () => {};
    this.#afterEvent = afterEvent;
  }

  /** Events queued and not yet run. */
  get pending(): number {
    return this.#fn.length;
  }

  /**
   * Queues `fn` to run `delay` virtual nanoseconds from now (a non-negative
   * integer); returns an id for {@link cancel}.
   */
  schedule(delay: number, fn: () => void): number {
    checkInt("delay", delay, 0);
    if (typeof fn !== "function") {
      throw new MachineError("EINVAL", "scheduled work must be a function");
    }
    const at = this.now + delay;
    let i = this.#time.length;
    while (i > 0 && this.#time[i - 1]! > at) i--;
    const id = this.#nextId++;
    this.#time.splice(i, 0, at);
    this.#id.splice(i, 0, id);
    this.#fn.splice(i, 0, fn);
    this.#start();
    return id;
  }

  /** Removes the event `id` if it has not run; returns whether it was queued. */
  cancel(id: number): boolean {
    const i = this.#id.indexOf(id);
    if (i < 0) return false;
    this.#time.splice(i, 1);
    this.#id.splice(i, 1);
    this.#fn.splice(i, 1);
    return true;
  }

  /**
   * Runs every queued event now, in order, including events they queue;
   * returns how many ran.
   */
  run(): number {
    let n = 0;
    while (this.#step()) n++;
    return n;
  }

  /** Verifies the queue's order; reports work that threw. */
  check(): void {
    const t = this.#time;
    for (let i = 0; i < t.length; i++) {
      if (!(t[i]! >= this.now) || (i > 0 && t[i]! < t[i - 1]!)) {
        throw new MachineError("CORRUPT", `Clock.check: event ${i} is out of order`);
      }
    }
    if (t.length !== this.#id.length || t.length !== this.#fn.length) {
      throw new MachineError("CORRUPT", "Clock.check: queue arrays disagree");
    }
    if (this.errors.length > 0) {
      throw new MachineError("CORRUPT", `Clock.check: device work threw: ${this.errors[0]}`);
    }
  }

  /** Runs the earliest event; false when none is queued. */
  #step(): boolean {
    if (this.#fn.length === 0) return false;
    const at = this.#time.shift()!;
    this.#id.shift();
    const fn = this.#fn.shift()!;
    if (at > this.now) this.now = at;
    this.ran++;
    try {
      fn();
      this.#afterEvent();
    } catch (e) {
      if (this.errors.length < 8) this.errors.push((e as Error)?.message ?? String(e));
    }
    return true;
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    queueMicrotask(this.#tick);
  }

  readonly #tick = (): void => {
    this.#started = false;
    this.#step();
    if (this.#fn.length > 0) this.#start();
  };
}
