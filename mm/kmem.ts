/**
 * The kernel heap: kmem_alloc over vmem, backed by real pages.
 *
 * Theory. Three arenas stack up as in illumos, of either vmem flavor:
 *
 *     heap      kernel virtual addresses [vaBase, vaBase + vaSize), quantum a page
 *       kmem_va   imports from heap; quantum caches for slabs up to 8 pages
 *                 (illumos's flavor only)
 *         kmem      imports from kmem_va through segkmem; quantum 16 bytes,
 *                   quantum caches for every multiple of 16 up to 256 bytes
 *
 * With FreeBSD's flavor kmem's quantum caches are UMA-like zones (FreeBSD's
 * own kernel arenas have none: only its buffer arena asks for them; kmem
 * here gets the illumos heap's 256 bytes, FreeBSD's cap of 16 quanta, so
 * the flavors serve the same sizes from caches). kmem_va has none: its
 * imports must be what a trace's replay does without caches.
 *
 * Recording (`recorder`): illumos's kmem is recorded as its callers use it,
 * since its replay builds the same caches. FreeBSD's replay has no caches,
 * so FreeBSD's kmem is recorded as its segments see it, through its tracer:
 * the allocations and frees the caches did not serve, and the caches' own
 * imports and releases.
 *
 * segkmem is kmem's import function: it takes virtual space from kmem_va,
 * then backs every page of it with a physical page from the page free lists
 * (uvm_pagealloc) and enters it in the kernel pmap. Its release function
 * unmaps the pages, frees them and gives the virtual space back. So a
 * kmem_alloc'd address is ordinary kernel memory: loads and stores through
 * the pmap land in the machine's RAM.
 *
 * kmem_alloc never returns 0 for a size it accepts unless it may not sleep:
 * `alloc` is KM_NOSLEEP (0 on failure), `allocWait` is KM_SLEEP (waits for a
 * free or for the page daemon to reclaim pages). When segkmem finds no free
 * page it kicks the page daemon and the import fails; the waiting caller
 * retries when the daemon's run wakes it.
 *
 * Invariants (see {@link Kmem.check}): every page of every span kmem holds
 * is mapped and owned by kmem; the count of backed pages equals kmem's
 * imported bytes over the page size.
 *
 * Cost: as vmem's allocation, plus one uvm_pagealloc and one pmap_enter per
 * page of a new span (and the reverse on release).
 *
 * @module
 */

import { checkInteger, describe, KernelError } from "./errors.ts";
import { type Pmap, VM_PROT_RW } from "./pmap.ts";
import type { Uvm } from "./page.ts";
import {
  VM_BESTFIT,
  VM_FIRSTFIT,
  VM_NEXTFIT,
  VM_NOSLEEP,
  VM_SLEEP,
  Vmem,
  VMEM_ALLOC,
  VMEM_FREE,
  VMEM_SPAN,
  VmemGroup,
} from "./vmem.ts";
import { M_BESTFIT, M_FIRSTFIT, VmemFreeBSD } from "./vmem_freebsd.ts";
import { allocFailed, type Arena, arenaDestroy, arenaReap, type VmemFlavor } from "./arena.ts";

/** Owner mark of pages backing the kernel heap. */
export const OWNER_KMEM = 1;
/** Owner mark of page-cache pages. */
export const OWNER_CACHE = 2;
/** Owner mark of DMA memory and bounce pages. */
export const OWNER_DMA = 3;

/** Alignment of every kmem_alloc'd address (the kmem arena's quantum). */
export const KMEM_ALIGN = 16;
/** Largest size served by kmem's quantum caches. */
export const KMEM_QCACHE_MAX = 256;
/** Largest size served by kmem_va's quantum caches, in pages. */
export const KMEM_VA_QCACHE_PAGES = 8;

/** What the heap reports of itself. */
export interface KmemStats {
  /** Bytes handed out and not yet freed (exact sizes, as callers asked). */
  inuse: number;
  /** Bytes the kmem arena has allocated: client buffers plus what its quantum caches hold. */
  arenaInuse: number;
  /** Pages backing the heap now. */
  pages: number;
  /** kmem_alloc calls that succeeded. */
  allocs: number;
  /** kmem_free calls. */
  frees: number;
  /** Imports that failed for lack of a free page. */
  pageShortages: number;
}

/**
 * The allocation policy of the heap's own allocations, as the trace format
 * names it: illumos arenas take all four (instant-fit by default), FreeBSD's
 * best-fit (the default there) and first-fit.
 */
export type KmemPolicy = "instantfit" | "bestfit" | "firstfit" | "nextfit";

/** The policies of each flavor, its default first. */
export const KMEM_POLICIES: Readonly<Record<VmemFlavor, readonly KmemPolicy[]>> = {
  illumos: ["instantfit", "bestfit", "firstfit", "nextfit"],
  freebsd: ["bestfit", "firstfit"],
};

/** Each flavor's allocation flag for each policy it has. */
const POLICY_FLAG: Record<VmemFlavor, Partial<Record<KmemPolicy, number>>> = {
  illumos: { instantfit: 0, bestfit: VM_BESTFIT, firstfit: VM_FIRSTFIT, nextfit: VM_NEXTFIT },
  freebsd: { bestfit: M_BESTFIT, firstfit: M_FIRSTFIT },
};

/** How the heap is built. */
export interface KmemOptions {
  /**
   * Called when segkmem finds too few free pages for a span of `pages`
   * pages (the kernel kicks its page daemon there).
   */
  onShortage?: (pages: number) => void;
  /** Records every arena operation (for `--record-vmem`). */
  recorder?: VmemRecorder | null;
  /** Whose vmem builds the arenas: `illumos` (the default) or `freebsd`. */
  flavor?: VmemFlavor;
  /**
   * The policy of every allocation the heap makes for its callers (imports
   * ask their source without one, as in vmem): instant-fit for illumos
   * arenas, best-fit for FreeBSD's, when absent.
   */
  policy?: KmemPolicy;
  /**
   * The group illumos arenas join (by default one of their own), so that a
   * shortage here reaps only that group's quantum caches.
   */
  group?: VmemGroup;
}

/** Records the heap's arena operations (for `--record-vmem`). */
export interface VmemRecorder {
  /** An arena came to be with its first span `[base, base + size)`. */
  create(arena: Arena, base: number, size: number): void;
  /**
   * An allocation with its flags as trace words (`nosleep` and the policy)
   * and its result (the flavor's {@link allocFailed}: failure).
   */
  alloc(arena: Arena, size: number, flags: readonly string[], addr: number): void;
  /** A free. */
  free(arena: Arena, addr: number, size: number): void;
  /** A remark for whoever reads the record (a trace writes it as a comment line). */
  comment?(text: string): void;
}

/** The kernel heap. */
export class Kmem {
  /** Kernel virtual address space. */
  readonly heap: Arena;
  /** The virtual-address cache kmem imports from. */
  readonly kmemVa: Arena;
  /** The heap arena kmem_alloc allocates from. */
  readonly kmem: Arena;
  /** What an arena's alloc returns on failure. */
  readonly #none: number;
  /** The policy's allocation flag in the arenas' flavor. */
  readonly #policy: number;
  /** The flags of a no-sleep allocation as trace words. */
  readonly #words: readonly string[];
  readonly #uvm: Uvm;
  readonly #pmap: Pmap;
  readonly #ps: number;
  readonly #onShortage: (pages: number) => void;
  /** Records the callers' kmem_alloc and kmem_free (null: kmem reports to its tracer). */
  readonly #callerOps: VmemRecorder | null;
  #pages = 0;
  #inuse = 0;
  #allocs = 0;
  #frees = 0;
  #shortages = 0;
  #recorder: VmemRecorder | null = null;

  /**
   * Builds the heap over `pmap`'s window, taking pages from `uvm`, as
   * `options` say. A flavor or policy that does not exist (or a policy the
   * flavor lacks) is refused with EINVAL.
   */
  constructor(uvm: Uvm, pmap: Pmap, options?: KmemOptions) {
    if (options === undefined) options = {};
    const flavor = options.flavor === undefined ? "illumos" : options.flavor;
    const policies = Object.hasOwn(POLICY_FLAG, flavor) ? POLICY_FLAG[flavor] : undefined;
    if (policies === undefined) {
      throw new KernelError(
        "EINVAL",
        `kmem: flavor must be illumos or freebsd, got ${describe(flavor)}`,
      );
    }
    const policy = options.policy === undefined ? KMEM_POLICIES[flavor][0]! : options.policy;
    const flag = Object.hasOwn(policies, policy) ? policies[policy] : undefined;
    if (flag === undefined) {
      throw new KernelError(
        "EINVAL",
        `kmem: policy must be one of ${Object.keys(policies).join(", ")} for ${flavor} arenas, ` +
          `got ${describe(policy)}`,
      );
    }
    const recorder = options.recorder ?? null;
    this.#uvm = uvm;
    this.#pmap = pmap;
    this.#ps = uvm.pageSize;
    this.#onShortage = options.onShortage ?? (() => {});
    this.#recorder = recorder;
    this.#none = allocFailed(flavor);
    this.#policy = flag;
    this.#words = flag === 0 ? ["nosleep"] : ["nosleep", policy];
    const ps = this.#ps;
    if (flavor === "freebsd") {
      this.#callerOps = null;
      const heap = this.heap = VmemFreeBSD.create("heap", pmap.vaBase, pmap.vaSize, ps);
      recorder?.create(this.heap, pmap.vaBase, pmap.vaSize);
      const kmemVa = this.kmemVa = VmemFreeBSD.create("kmem_va", 0, 0, ps, { source: heap });
      recorder?.create(this.kmemVa, 0, 0);
      const kmem = this.kmem = VmemFreeBSD.create("kmem", 0, 0, KMEM_ALIGN, {
        qcacheMax: KMEM_QCACHE_MAX,
        source: kmemVa,
        importFn: (source, size, flags) => this.#segkmemAlloc(source, size, flags),
        releaseFn: (source, addr, size) => this.#segkmemFree(source, addr, size),
      });
      recorder?.create(kmem, 0, 0);
      if (recorder !== null) {
        // Replayed on an arena without caches, every line nosleep: nothing waits there.
        kmem.tracer = {
          alloc: (size, flags, addr) =>
            recorder.alloc(
              kmem,
              size,
              ["nosleep", flags & M_FIRSTFIT ? "firstfit" : "bestfit"],
              addr,
            ),
          free: (addr, size) => recorder.free(kmem, addr, size),
        };
      }
      return;
    }
    this.#callerOps = recorder;
    const heap = this.heap = Vmem.create("heap", pmap.vaBase, pmap.vaSize, ps, {
      group: options.group ?? new VmemGroup(),
    });
    recorder?.create(this.heap, pmap.vaBase, pmap.vaSize);
    const kmemVa = this.kmemVa = Vmem.create("kmem_va", 0, 0, ps, {
      source: heap,
      qcacheMax: KMEM_VA_QCACHE_PAGES * ps,
    });
    recorder?.create(this.kmemVa, 0, 0);
    this.kmem = Vmem.create("kmem", 0, 0, KMEM_ALIGN, {
      source: kmemVa,
      qcacheMax: KMEM_QCACHE_MAX,
      importFn: (source, size, vmflag) => this.#segkmemAlloc(source, size, vmflag),
      releaseFn: (source, addr, size) => this.#segkmemFree(source, addr, size),
    });
    recorder?.create(this.kmem, 0, 0);
  }

  /** The heap's counters. */
  get stats(): KmemStats {
    return {
      inuse: this.#inuse,
      arenaInuse: this.kmem.size(VMEM_ALLOC),
      pages: this.#pages,
      allocs: this.#allocs,
      frees: this.#frees,
      pageShortages: this.#shortages,
    };
  }

  /**
   * kmem_alloc(size, KM_NOSLEEP): a kernel virtual address, or 0 (no heap
   * address is 0). The arena refuses a bad size (EINVAL) before anything
   * changes; checking it here as well made this path too big for V8 to
   * inline whole into a caller (kmem-alloc-free 64 ran 1.7 times slower).
   */
  alloc(size: number): number {
    const va = this.kmem.alloc(size, VM_NOSLEEP | this.#policy);
    this.#callerOps?.alloc(this.kmem, size, this.#words, va);
    if (va === this.#none) return 0;
    this.#allocs++;
    this.#inuse += size;
    return va;
  }

  /** kmem_zalloc(size, KM_NOSLEEP): as {@link alloc}, the bytes zeroed. */
  zalloc(size: number): number {
    const va = this.alloc(size);
    if (va !== 0) this.#pmap.fill(va, size, 0);
    return va;
  }

  /**
   * kmem_alloc(size, KM_SLEEP): waits until the heap can serve `size`
   * bytes (a free, or the page daemon reclaiming pages). Rejects with
   * ECANCELED when `signal` aborts.
   */
  async allocWait(size: number, signal?: AbortSignal): Promise<number> {
    checkInteger("size", size, 1);
    const va = await this.kmem.allocWait(size, VM_SLEEP | this.#policy, signal);
    // Replay has no one to wait for: the trace shows the attempt that succeeded.
    this.#callerOps?.alloc(this.kmem, size, this.#words, va);
    this.#allocs++;
    this.#inuse += size;
    return va;
  }

  /** kmem_free: gives back `size` bytes at `va` (the size asked for). */
  free(va: number, size: number): void {
    this.kmem.free(va, size);
    this.#callerOps?.free(this.kmem, va, size);
    this.#frees++;
    this.#inuse -= size;
  }

  /**
   * uvm_km_alloc(VAONLY) + pmap_kenter_pa: maps the physical runs
   * `[pfn, count]` at fresh kernel virtual addresses from the heap arena and
   * returns the first. Throws ENOMEM when no virtual space is left.
   */
  mapPhysical(runs: readonly (readonly [number, number])[], owner?: number): number {
    if (owner === undefined) owner = 0;
    const ps = this.#ps;
    let pages = 0;
    for (const [, n] of runs) pages += n;
    const size = pages * ps;
    const va = this.heap.alloc(size, VM_NOSLEEP | this.#policy);
    this.#recorder?.alloc(this.heap, size, this.#words, va);
    if (va === this.#none) {
      throw new KernelError("ENOMEM", `no ${size} bytes of kernel virtual space left`);
    }
    let off = 0;
    for (const [pfn, n] of runs) {
      for (let i = 0; i < n; i++, off += ps) {
        this.#pmap.enter(va + off, (pfn + i) * ps, VM_PROT_RW);
        if (owner !== 0) this.#uvm.setOwner(pfn + i, owner);
      }
    }
    return va;
  }

  /** Undoes {@link mapPhysical}: unmaps `[va, va + size)` and frees the virtual space. */
  unmapPhysical(va: number, size: number): void {
    this.heap.free(va, size); // refuses a range it did not hand out, changing nothing
    this.#recorder?.free(this.heap, va, size);
    this.#pmap.remove(va, size);
  }

  /** Wakes sleepers of every heap arena (after pages came free). */
  wakeup(): void {
    this.kmem.wakeup();
    this.kmemVa.wakeup();
    this.heap.wakeup();
  }

  /**
   * Returns what the quantum caches keep in reserve to the arenas: illumos's
   * depots (kmem_reap), FreeBSD's bucket lists (qc_drain).
   */
  reap(): void {
    arenaReap(this.kmem);
    arenaReap(this.kmemVa);
  }

  /**
   * Tears the heap down as a shutdown does: destroys kmem (emptying its
   * quantum caches, so every wholly free span goes back through segkmem),
   * then kmem_va, then the heap arena. Returns the bytes each still had
   * allocated: kmem's are leaked buffers, the heap's leaked virtual space.
   * (A FreeBSD arena that still has allocations refuses to go and stays.)
   * Spans the destroyed kmem still held go back through segkmem before
   * kmem_va is destroyed.
   */
  shutdown(): { kmem: number; kmemVa: number; heap: number } {
    const spans: number[] = [];
    this.kmem.walk(VMEM_SPAN, (start, size) => void spans.push(start, size));
    const kmem = arenaDestroy(this.kmem);
    // vmem_destroy keeps the spans it imported (a next-fit rotor can even
    // keep a wholly free one); once kmem is gone they go back through
    // segkmem. A FreeBSD arena that refused to go keeps them.
    if (!(this.kmem instanceof VmemFreeBSD && !this.kmem.destroyed)) {
      for (let i = 0; i < spans.length; i += 2) {
        if (this.#pmap.extract(spans[i]!) >= 0) {
          this.#segkmemFree(this.kmemVa, spans[i]!, spans[i + 1]!);
        }
      }
    }
    const kmemVa = arenaDestroy(this.kmemVa);
    const heap = arenaDestroy(this.heap);
    return { kmem, kmemVa, heap };
  }

  /** Bytes of kernel virtual space allocated from the heap arena. */
  get vaInuse(): number {
    return this.heap.size(VMEM_ALLOC);
  }

  /** Bytes of kernel virtual space still free. */
  get vaFree(): number {
    return this.heap.size(VMEM_FREE);
  }

  /** Checks the arenas and that every span of kmem is backed and mapped. */
  check(): void {
    this.heap.check();
    this.kmemVa.check();
    this.kmem.check();
    let backed = 0;
    this.kmem.walk(0x10, /* VMEM_SPAN */ (start, size) => {
      for (let va = start; va < start + size; va += this.#ps) {
        const pa = this.#pmap.extract(va);
        if (pa < 0) {
          throw new KernelError("CORRUPT", `kmem: span page 0x${va.toString(16)} is not mapped`);
        }
        if (this.#uvm.owner(pa / this.#ps) !== OWNER_KMEM) {
          throw new KernelError(
            "CORRUPT",
            `kmem: page at 0x${pa.toString(16)} is not owned by kmem`,
          );
        }
        backed++;
      }
    });
    if (backed !== this.#pages) {
      throw new KernelError(
        "CORRUPT",
        `kmem: ${this.#pages} pages counted, ${backed} back its spans`,
      );
    }
  }

  #segkmemAlloc(source: Arena, size: number, vmflag: number): number {
    const va = source.alloc(size, vmflag);
    if (va === this.#none) return va;
    const ps = this.#ps;
    for (let off = 0; off < size; off += ps) {
      const pfn = this.#uvm.pageAlloc();
      if (pfn < 0) {
        this.#unback(va, off);
        source.free(va, size);
        this.#shortages++;
        this.#onShortage(size / ps);
        return this.#none;
      }
      this.#uvm.setOwner(pfn, OWNER_KMEM);
      this.#pmap.enter(va + off, pfn * ps, VM_PROT_RW);
      this.#pages++;
    }
    return va;
  }

  #segkmemFree(source: Arena, va: number, size: number): void {
    this.#unback(va, size);
    source.free(va, size);
  }

  /** Unmaps and frees the pages backing `[va, va + len)`. */
  #unback(va: number, len: number): void {
    const ps = this.#ps;
    for (let off = 0; off < len; off += ps) {
      const pa = this.#pmap.extract(va + off);
      if (pa < 0) {
        throw new KernelError("EFAULT", `segkmem: 0x${(va + off).toString(16)} is not mapped`);
      }
      this.#pmap.remove(va + off, ps);
      this.#uvm.pageFree(pa / ps);
      this.#pages--;
    }
  }
}
