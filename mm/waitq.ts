/**
 * A wait channel: `cv_wait` and `cv_broadcast` for requests that wait as
 * promises. A request that cannot go on awaits {@link WaitQueue.wait}; a
 * {@link WaitQueue.broadcast} wakes every request waiting then, and each
 * tries again. A waiter whose signal aborts leaves the queue and rejects.
 *
 * Data: the resolvers of the waiting requests, or null while none waits (so
 * that the hot paths that broadcast pay one comparison). Cost: O(1) to wait,
 * O(waiters) to broadcast; an abort finds its waiter by a linear search.
 *
 * @module
 */

/** Requests waiting for a change. */
export class WaitQueue {
  #waiters: (() => void)[] | null = null;

  /** True while some request waits. */
  get waiting(): boolean {
    return this.#waiters !== null;
  }

  /**
   * Resolves at the next {@link broadcast}; rejects with `cancelled()` when
   * `signal` aborts first (at once if it already has).
   */
  wait(signal: AbortSignal | undefined, cancelled: () => Error): Promise<void> {
    if (signal?.aborted) return Promise.reject(cancelled());
    return new Promise<void>((resolve, reject) => {
      if (signal === undefined) {
        (this.#waiters ??= []).push(resolve);
        return;
      }
      const onAbort = () => {
        const list = this.#waiters;
        const i = list === null ? -1 : list.indexOf(wake);
        if (i >= 0) list!.splice(i, 1);
        if (list !== null && list.length === 0) this.#waiters = null;
        reject(cancelled());
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      (this.#waiters ??= []).push(wake);
    });
  }

  /** Wakes every waiting request. */
  broadcast(): void {
    const list = this.#waiters;
    if (list === null) return;
    this.#waiters = null;
    for (const wake of list) wake();
  }
}
