/**
 * mulberry32: the 32-bit generator every workload, randomised test and
 * fault-injection switch of the project draws from, so that a run is
 * repeatable from its seed (see docs/workloads.md).
 *
 * @module
 */

/** A seeded source of unsigned 32-bit integers. */
export class Mulberry32 {
  #state: number;

  /** Starts the generator at `seed` (only its low 32 bits count). */
  constructor(seed: number) {
    this.#state = seed | 0;
  }

  /** The next unsigned 32-bit integer. */
  next(): number {
    this.#state = (this.#state + 0x6D2B79F5) | 0;
    let t = Math.imul(this.#state ^ (this.#state >>> 15), 1 | this.#state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in `[0, n)` for `n <= 2^32` (by `next() % n`, as the workloads do). */
  below(n: number): number {
    return this.next() % n;
  }
}
