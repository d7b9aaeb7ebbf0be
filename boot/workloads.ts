/**
 * Workloads the kernel runs after boot. Each draws from mulberry32 with the
 * run's seed, checks the data it wrote through kernel virtual addresses,
 * frees everything it took, and reports counts and any failure it saw.
 *
 * - heap: random kmem_alloc / kmem_zalloc / kmem_free of mixed sizes,
 *   backing off (a free in place of an allocation) near the end of memory.
 * - ids: process IDs from the next-fit identifier arena.
 * - pressure: fill the page cache, then allocate until the page daemon must
 *   reclaim: sleeping heap allocations, waiting simple page lists, and
 *   contiguous requests that need uvm_pglistalloc's aggressive path.
 * - dma: every attached driver moves data through bus_dma, checked end to
 *   end (see `dma_workload.ts`).
 *
 * @module
 */

import { PAGE_SIZE, PID_MAX } from "./kernel.ts";
import type { Workload } from "./workload.ts";
import { Mulberry32 } from "../mm/random.ts";
import type { PageList } from "../mm/pglist.ts";
import { DMA_DEFAULT_OPS, dmaWorkload } from "./dma_workload.ts";

export type { Workload, WorkloadReport } from "./workload.ts";

/** Default operation counts, sized so the default run takes a few seconds. */
export const DEFAULT_OPS: Record<string, number> = {
  heap: 20000,
  ids: 20000,
  pressure: 64,
  dma: DMA_DEFAULT_OPS,
};

/** Byte the heap workload writes into allocation `tag`. */
function pattern(tag: number): number {
  return (tag * 0x9e + 0x5b) & 0xff;
}

/** Draws a kmem_alloc size: mostly small, some pages, a few large buffers. */
function heapSize(rng: Mulberry32): number {
  const r = rng.below(100);
  if (r < 60) return 1 + rng.below(256);
  if (r < 90) return 257 + rng.below(4096 - 256);
  if (r < 99) return 4097 + rng.below(65536 - 4096);
  return 65537 + rng.below(262144 - 65536);
}

/** Random kmem traffic whose every byte is checked when it is freed. */
export const heapChurn: Workload = (k, seed, ops) => {
  const t0 = performance.now();
  const rng = new Mulberry32(seed);
  const cap = 4096;
  const va = new Float64Array(cap);
  const size = new Float64Array(cap);
  const tag = new Int32Array(cap);
  let live = 0;
  let nextTag = 1;
  const errors: string[] = [];
  const counts = {
    allocs: 0,
    zallocs: 0,
    frees: 0,
    bytesChecked: 0,
    peakLive: 0,
    backoffs: 0,
    failed: 0,
  };
  const buf = new Uint8Array(262144);
  // The workload lives within the machine: it frees a buffer instead of
  // allocating one that would leave fewer free pages than an eighth of
  // those free when it started (64 at least). A 16 MiB machine runs out
  // long before the walk's live buffers peak; a larger one never gets there.
  const pageSize = k.uvm.pageSize;
  const lowWater = Math.max(64, Math.floor(k.uvm.free / 8));

  const verify = (i: number, expect: number, what: string) => {
    const n = size[i]!;
    const view = buf.subarray(0, n);
    k.pmap.read(va[i]!, view);
    counts.bytesChecked += n;
    for (let b = 0; b < n; b++) {
      if (view[b] !== expect) {
        errors.push(
          `${what} at 0x${(va[i]! + b).toString(16)}: byte ${view[b]}, expected ${expect}`,
        );
        return;
      }
    }
  };

  for (let op = 0; op < ops; op++) {
    let n = 0, zero = false;
    if (live === 0 || (live < cap && rng.below(100) < 55)) {
      n = heapSize(rng);
      zero = rng.below(10) === 0;
      if (live > 0 && k.uvm.free - Math.ceil(n / pageSize) < lowWater) {
        counts.backoffs++;
        n = 0;
      }
    }
    if (n !== 0) {
      const addr = zero ? k.kmem.zalloc(n) : k.kmem.alloc(n);
      if (addr === 0) {
        counts.failed++;
        errors.push(`kmem_alloc(${n}) failed with ${k.uvm.free} pages free`);
        continue;
      }
      va[live] = addr;
      size[live] = n;
      tag[live] = nextTag++;
      if (zero) {
        counts.zallocs++;
        verify(live, 0, "kmem_zalloc left a non-zero byte");
      }
      counts.allocs++;
      k.pmap.fill(addr, n, pattern(tag[live]!));
      live++;
      counts.peakLive = Math.max(counts.peakLive, live);
    } else {
      const i = rng.below(live);
      verify(i, pattern(tag[i]!), "heap buffer overwritten");
      k.kmem.free(va[i]!, size[i]!);
      counts.frees++;
      live--;
      va[i] = va[live]!;
      size[i] = size[live]!;
      tag[i] = tag[live]!;
    }
  }
  k.peak("heap");
  for (let i = 0; i < live; i++) {
    verify(i, pattern(tag[i]!), "heap buffer overwritten");
    k.kmem.free(va[i]!, size[i]!);
    counts.frees++;
  }
  k.kmem.reap();
  return Promise.resolve({ name: "heap", ops, ms: performance.now() - t0, counts, errors });
};

/** Process IDs: next-fit hands them out in rising order and wraps. */
export const idChurn: Workload = (k, seed, ops) => {
  const t0 = performance.now();
  const rng = new Mulberry32(seed);
  const used = new Uint8Array(PID_MAX + 1);
  const live = new Int32Array(PID_MAX);
  let nlive = 0;
  let last = 0;
  const errors: string[] = [];
  const counts = { allocs: 0, frees: 0, wraps: 0, peakLive: 0 };
  const target = Math.min(2000, PID_MAX >> 1);
  for (let op = 0; op < ops; op++) {
    if (nlive === 0 || (nlive < target && rng.below(100) < 52)) {
      const pid = k.allocPid();
      if (pid === 0) {
        errors.push(`pid allocation failed with ${nlive} live`);
        continue;
      }
      if (used[pid]) errors.push(`pid ${pid} handed out twice`);
      if (pid <= last) counts.wraps++;
      last = pid;
      used[pid] = 1;
      live[nlive++] = pid;
      counts.allocs++;
      counts.peakLive = Math.max(counts.peakLive, nlive);
    } else {
      const i = rng.below(nlive);
      const pid = live[i]!;
      live[i] = live[--nlive]!;
      used[pid] = 0;
      k.freePid(pid);
      counts.frees++;
    }
  }
  k.peak("ids");
  while (nlive > 0) {
    const pid = live[--nlive]!;
    used[pid] = 0;
    k.freePid(pid);
    counts.frees++;
  }
  if (ops >= 4 * PID_MAX && counts.wraps === 0) errors.push("next-fit never wrapped");
  return Promise.resolve({ name: "ids", ops, ms: performance.now() - t0, counts, errors });
};

/**
 * Memory pressure: the page cache takes every free page, then the heap and
 * the page-list allocator must wait for the page daemon to reclaim.
 */
export const memoryPressure: Workload = async (k, seed, ops) => {
  const t0 = performance.now();
  const rng = new Mulberry32(seed);
  const errors: string[] = [];
  const counts = {
    cached: 0,
    heapWaits: 0,
    heapBytes: 0,
    simpleLists: 0,
    contigLists: 0,
    contigWaited: 0,
    listsFreed: 0,
    reclaimed: 0,
  };
  const before = k.pagedaemon.stats.reclaimed;
  const pd = k.pagedaemon;
  counts.cached = pd.cache.fill();

  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error("memory-pressure workload stalled")), 20000);
  const heap: [number, number][] = [];
  const lists: PageList[] = [];
  const ramEnd = k.machine.memmap.ramEnd();
  const ps = PAGE_SIZE;
  const buf = new Uint8Array(65536);
  try {
    // Sleeping kmem_allocs of 64 KiB until segkmem has run out of pages a
    // few times: each shortage kicks the daemon, whose run wakes the sleeper.
    const shortages = k.kmem.stats.pageShortages;
    for (let n = 0; n < 4 * ops && k.kmem.stats.pageShortages < shortages + 4; n++) {
      const size = 65536;
      const va = await k.kmem.allocWait(size, ac.signal);
      k.pmap.fill(va, size, 0xa5);
      heap.push([va, size]);
      counts.heapBytes += size;
    }
    counts.heapWaits = k.kmem.stats.pageShortages - shortages;
    // Hold at most half of the pages still to be had (free or cached: what
    // the heap above and the workloads before left) in page lists: past
    // that, give back a list before taking the next, so the run fits any
    // machine, whatever its arenas keep.
    let held = 0;
    const cap = (k.uvm.free + pd.cache.size) >> 1;
    for (let op = 0; op < ops; op++) {
      while (held > cap && lists.length > 0) {
        const i = rng.below(lists.length);
        held -= lists[i]!.length;
        k.freePages(lists[i]!);
        lists[i] = lists[lists.length - 1]!;
        lists.pop();
        counts.listsFreed++;
      }
      if (rng.below(2) === 0) {
        // A waiting simple request: pages anywhere, any order.
        const pages = 8 + rng.below(57);
        lists.push(await k.allocPagesWait(pages * ps, 0, ramEnd, 0, 0, pages, ac.signal));
        held += pages;
        counts.simpleLists++;
      } else {
        // A contiguous, aligned request: with every page cached, only the
        // aggressive path (page by page, while the daemon reclaims) finds it.
        const pages = 4 << rng.below(3);
        const align = 16 * ps;
        const waitedBefore = pd.stats.waits;
        const list = await k.allocPagesWait(pages * ps, 0, ramEnd, align, 0, 1, ac.signal);
        if (pd.stats.waits > waitedBefore) counts.contigWaited++;
        const runs = list.runs();
        if (runs.length !== 1 || runs[0]![1] !== pages || (runs[0]![0] * ps) % align !== 0) {
          errors.push(`contiguous request of ${pages} pages got ${JSON.stringify(runs)}`);
        }
        lists.push(list);
        held += pages;
        counts.contigLists++;
      }
    }
    k.peak("pressure");
    for (const [va, n] of heap) {
      const view = buf.subarray(0, n);
      k.pmap.read(va, view);
      if (view.some((b) => b !== 0xa5)) {
        errors.push(`heap buffer 0x${va.toString(16)} changed under pressure`);
      }
    }
  } catch (e) {
    errors.push(`pressure: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  for (const [va, n] of heap) k.kmem.free(va, n);
  for (const list of lists) k.freePages(list);
  k.kmem.reap();
  counts.reclaimed = pd.stats.reclaimed - before;
  pd.drain();
  if (ops > 0 && counts.reclaimed === 0) {
    errors.push("the page daemon reclaimed nothing under pressure");
  }
  return { name: "pressure", ops, ms: performance.now() - t0, counts, errors };
};

/** The workloads by name. */
export const WORKLOAD_TABLE: Record<string, Workload> = {
  heap: heapChurn,
  ids: idChurn,
  pressure: memoryPressure,
  dma: dmaWorkload,
};
