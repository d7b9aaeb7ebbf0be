/**
 * Named allocations in vmem traces (the "Named allocations" part of the
 * replay format): an `alloc` or `xalloc` line may carry `"id":N`, and a
 * `free` or `xfree` line may give that id instead of `"addr"`, so that a
 * trace recorded under one policy can be replayed under another, where the
 * addresses differ.
 *
 * Theory. {@link NamedAllocations} sits in front of any replayer of the vmem
 * format and rewrites a free by id into a free by address before the
 * replayer sees it. It keeps two maps: id -> (arena, address, size) of every
 * live named allocation, and arena -> address -> id, so that a free by
 * address, or the destruction of an arena, also ends the names of what it
 * freed. An id is live from the allocation that returned an address until
 * the free that gives it back; naming an id that is not live is BADFREE.
 *
 * Invariants: the two maps hold exactly the same entries; the maps change
 * only after the replayer accepted the line, so a refused line leaves them
 * (and the arenas) as they were.
 *
 * Cost: one or two map operations per allocation or free that names an id;
 * a trace without ids pays one property test per line.
 *
 * @module
 */

import { describe, KernelError, MAX_ADDR } from "./errors.ts";

type Op = Record<string, unknown>;

/** What {@link NamedAllocations} drives: a replayer of the vmem format. */
export interface OpApplier {
  /** Carries out one operation; throws a KernelError when it refuses it. */
  apply(op: Record<string, unknown>): unknown;
}

interface Named {
  arena: unknown;
  addr: number;
  size: unknown;
}

function idOf(op: Op): number {
  const id = op.id;
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ADDR) {
    throw new KernelError(
      "EINVAL",
      `"id" must be an integer in [0, 2^53 - 1], got ${describe(id)}`,
    );
  }
  return id;
}

/** Resolves ids in allocation and free lines before `inner` replays them. */
export class NamedAllocations implements OpApplier {
  readonly #inner: OpApplier;
  readonly #live = new Map<number, Named>();
  readonly #byAddr = new Map<unknown, Map<number, number>>();

  /** Puts the id table in front of `inner`. */
  constructor(inner: OpApplier) {
    this.#inner = inner;
  }

  /** Number of ids live now. */
  get liveIds(): number {
    return this.#live.size;
  }

  /** Carries out one operation, resolving its id; throws a KernelError when refused. */
  apply(op: Record<string, unknown>): unknown {
    switch (op.op) {
      case "alloc":
      case "xalloc":
        return "id" in op ? this.#allocNamed(op) : this.#inner.apply(op);
      case "free":
      case "xfree":
        return "id" in op ? this.#freeNamed(op) : this.#freeByAddr(op);
      case "destroy": {
        const out = this.#inner.apply(op);
        const names = this.#byAddr.get(op.arena);
        if (names !== undefined) {
          for (const id of names.values()) this.#live.delete(id);
          this.#byAddr.delete(op.arena);
        }
        return out;
      }
      default:
        return this.#inner.apply(op);
    }
  }

  #allocNamed(op: Op): unknown {
    const id = idOf(op);
    if (this.#live.has(id)) {
      throw new KernelError("EINVAL", `"id" ${id} names an allocation that is still live`);
    }
    const out = this.#inner.apply(op);
    const addr = (out as { addr?: unknown }).addr;
    if (typeof addr === "number") {
      this.#live.set(id, { arena: op.arena, addr, size: op.size });
      let names = this.#byAddr.get(op.arena);
      if (names === undefined) this.#byAddr.set(op.arena, names = new Map());
      names.set(addr, id);
    }
    return out;
  }

  #freeNamed(op: Op): unknown {
    const id = idOf(op);
    if ("addr" in op) {
      throw new KernelError("EINVAL", `a free gives "addr" or "id", not both (id ${id})`);
    }
    const named = this.#live.get(id);
    if (named === undefined) {
      throw new KernelError("BADFREE", `id ${id} names no live allocation`);
    }
    if (op.arena !== named.arena) {
      throw new KernelError(
        "BADFREE",
        `id ${id} was allocated in arena ${describe(named.arena)}, not ${describe(op.arena)}`,
      );
    }
    const out = this.#inner.apply({
      op: op.op,
      arena: op.arena,
      addr: named.addr,
      size: "size" in op ? op.size : named.size,
    });
    this.#forget(id, named);
    return out;
  }

  #freeByAddr(op: Op): unknown {
    const out = this.#inner.apply(op);
    if (this.#live.size > 0) {
      const id = this.#byAddr.get(op.arena)?.get(op.addr as number);
      if (id !== undefined) this.#forget(id, this.#live.get(id)!);
    }
    return out;
  }

  #forget(id: number, named: Named): void {
    this.#live.delete(id);
    this.#byAddr.get(named.arena)?.delete(named.addr);
  }
}
