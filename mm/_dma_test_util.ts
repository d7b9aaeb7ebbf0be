/**
 * What the bus_dma tests share: a small kernel of their own.
 *
 * @module
 */

import { BusDma, type DmaBackend, type PageRuns } from "./bus_dma.ts";
import { loadRam, Uvm } from "./page.ts";
import { type PageList, pglistAlloc, pglistFree } from "./pglist.ts";
import { Pmap } from "./pmap.ts";
import { VM_NOSLEEP, Vmem } from "./vmem.ts";
import { DMA_24BIT, Ram } from "../machine/mod.ts";

const PS = 4096;
const RAM = 32 * 2 ** 20; // frames 1..8191
const KVA = 2 ** 40;

/** A small kernel: 32 MiB of RAM, the page allocator, a pmap, a VA arena and bus_dma. */
export function dmaWorld(bouncePages = 64) {
  const ram = new Ram([{ base: 0, size: RAM }], { chunkSize: 65536 });
  const uvm = new Uvm({ pageSize: PS });
  loadRam(uvm, [{ base: PS, size: RAM - PS }]);
  const pmap = new Pmap(ram, KVA, 2 ** 30, PS);
  const va = Vmem.create("va", KVA, 2 ** 30, PS);
  const lists = new Map<PageRuns, PageList>();
  const backend: DmaBackend = {
    pageSize: PS,
    ramEnd: RAM,
    phys: ram,
    kva: pmap,
    copy: (dst, src, len) => ram.copy(dst, src, len),
    allocPages(size, low, high, alignment, boundary, nsegs) {
      const list = pglistAlloc(uvm, size, low, high, alignment, boundary, nsegs);
      const runs = { runs: list.runs() };
      lists.set(runs, list);
      return runs;
    },
    freePages(runs) {
      pglistFree(uvm, lists.get(runs)!);
      lists.delete(runs);
    },
    mapPages(runs) {
      let n = 0;
      for (const [, c] of runs.runs) n += c;
      const base = va.alloc(n * PS, VM_NOSLEEP);
      let off = 0;
      for (const [pfn, c] of runs.runs) {
        for (let i = 0; i < c; i++, off += PS) pmap.enter(base + off, (pfn + i) * PS);
      }
      return base;
    },
    unmapPages(base, size) {
      pmap.remove(base, size);
      va.free(base, size);
    },
  };
  /** A kernel buffer on the given frames, mapped contiguously. */
  const buffer = (pfns: number[]) => {
    const base = va.alloc(pfns.length * PS, VM_NOSLEEP);
    pfns.forEach((pfn, i) => {
      uvm.pageClaim(pfn);
      pmap.enter(base + i * PS, pfn * PS);
    });
    return base;
  };
  const dma = new BusDma(backend, { bouncePages });
  /** Makes bus_dma take its pool now (with a tag of one reserved page). */
  const takePool = () => dma.createTag("anchor", { maxAddress: DMA_24BIT }, { bouncePages: 1 });
  return { ram, uvm, pmap, va, dma, buffer, backend, lists, takePool };
}
