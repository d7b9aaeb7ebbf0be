/**
 * What the kernel heap asks of a vmem arena, whichever flavor builds it:
 * illumos's (vmem.ts) or FreeBSD's (vmem_freebsd.ts). Both classes satisfy
 * {@link Arena} as they are; the few things they do differently (the value
 * a failed allocation returns, imported bytes, quantum caches to reap, a
 * destroy with allocations left) are answered here by flavor.
 *
 * @module
 */

import { KernelError } from "./errors.ts";
import { Vmem, VMEM_ALLOC } from "./vmem.ts";
import { VmemFreeBSD } from "./vmem_freebsd.ts";

/** The vmem implementations an arena can come from. */
export type VmemFlavor = "illumos" | "freebsd";

/** The operations of an arena both flavors have, with the same meaning. */
export interface Arena {
  /** Arena name. */
  readonly name: string;
  /** The unit of allocation. */
  readonly quantum: number;
  /** Largest size served by quantum caches (0: none). */
  readonly qcacheMax: number;
  /** The arena spans are imported from, if any. */
  readonly source: Arena | null;
  /**
   * Allocates `size` units. Flags 1 (VM_NOSLEEP, M_NOWAIT) fail rather than
   * wait; 0 (VM_SLEEP) is a request that may wait. Returns the address, or
   * {@link allocFailed} of the flavor.
   */
  alloc(size: number, flags: number): number;
  /** A request that waits for room (flags as {@link alloc}). */
  allocWait(size: number, flags: number, signal?: AbortSignal): Promise<number>;
  /** Frees what {@link alloc} returned. */
  free(addr: number, size: number): void;
  /** Bytes allocated (VMEM_ALLOC), free (VMEM_FREE) or both. */
  size(typemask: number): number;
  /** Calls `fn` for each segment whose type is in `typemask`, in arena order. */
  walk(
    typemask: number,
    fn: (start: number, size: number, type: "alloc" | "free" | "span") => void,
  ): void;
  /** Wakes the requests waiting on the arena. */
  wakeup(): void;
  /** Throws KernelError("CORRUPT") on a broken invariant. */
  check(): void;
}

/** What `alloc` returns when it finds no room: 0 for illumos, -1 for FreeBSD (0 is an address there). */
export function allocFailed(flavor: VmemFlavor): number {
  return flavor === "freebsd" ? -1 : 0;
}

/** Bytes in the spans `a` imported from its source. */
export function arenaImported(a: Arena): number {
  return a instanceof VmemFreeBSD ? a.imported : (a as Vmem).stats.memImport;
}

/**
 * Returns what the quantum caches of `a` keep in reserve: an illumos
 * arena's depots (`vmem_qcache_reap`), a FreeBSD one's bucket lists
 * (`qc_drain`).
 */
export function arenaReap(a: Arena): void {
  if (a instanceof Vmem) a.reap();
  else if (a instanceof VmemFreeBSD) a.drain();
}

/**
 * Destroys `a` and returns the bytes still allocated in it. An illumos
 * arena goes whatever it holds; a FreeBSD one refuses while it has
 * allocations or an importer, and then stays (with what it holds counted).
 */
export function arenaDestroy(a: Arena): number {
  if (!(a instanceof VmemFreeBSD)) return (a as Vmem).destroy();
  a.purge(); // as destroy would first: what the caches hold is not a leak
  const leaked = a.size(VMEM_ALLOC);
  if (leaked === 0) {
    try {
      a.destroy();
    } catch (e) {
      // An arena importing from it is still alive (and counts its own leak).
      if (!(e instanceof KernelError && e.code === "EBUSY")) throw e;
    }
  }
  return leaked;
}
