/**
 * What the bus_dma tests share: small kernels of their own, one on bare
 * RAM and one on a machine with an IOMMU.
 *
 * @module
 */

import { BusDma, type DmaBackend, type DmaMap, type PageRuns } from "./bus_dma.ts";
import { KernelError } from "./errors.ts";
import { loadRam, Uvm } from "./page.ts";
import { type PageList, pglistAlloc, pglistFree } from "./pglist.ts";
import { Pmap } from "./pmap.ts";
import { VM_NOSLEEP, Vmem } from "./vmem.ts";
import { IommuDriver } from "./iommu.ts";
import {
  createMachine,
  DMA_24BIT,
  type DmaConstraints,
  type DmaPort,
  IOMMU_PAGE,
  Ram,
} from "../machine/mod.ts";

const PS = 4096;
const RAM = 32 * 2 ** 20; // frames 1..8191
const KVA = 2 ** 40;

/** The page allocator, a pmap and a VA arena over `ram`, and bus_dma's backend on them. */
function kernelParts(ram: Ram, ramEnd: number, regions: { base: number; size: number }[]) {
  const uvm = new Uvm({ pageSize: PS });
  loadRam(uvm, regions);
  const pmap = new Pmap(ram, KVA, 2 ** 30, PS);
  const va = Vmem.create("va", KVA, 2 ** 30, PS);
  const lists = new Map<PageRuns, PageList>();
  const backend: DmaBackend = {
    pageSize: PS,
    ramEnd,
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
  return { uvm, pmap, va, lists, backend, buffer };
}

/** A small kernel: 32 MiB of RAM, the page allocator, a pmap, a VA arena and bus_dma. */
export function dmaWorld(bouncePages = 64) {
  const ram = new Ram([{ base: 0, size: RAM }], { chunkSize: 65536 });
  const parts = kernelParts(ram, RAM, [{ base: PS, size: RAM - PS }]);
  const dma = new BusDma(parts.backend, { bouncePages });
  /** Makes bus_dma take its pool now (with a tag of one reserved page). */
  const takePool = () => dma.createTag("anchor", { maxAddress: DMA_24BIT }, { bouncePages: 1 });
  return { ram, dma, takePool, ...parts };
}

/**
 * A small kernel on a 64 MiB PC with an IOMMU in front of the devices
 * `devices` names (bare DMA ports with those constraints): the IOMMU
 * driver gives each a domain, and bus_dma translates their tags.
 */
export function iommuWorld(devices: Record<string, DmaConstraints>, bouncePages = 64) {
  const m = createMachine({ preset: "pc", ramSize: 64 * 2 ** 20, iommu: true });
  const ports: Record<string, DmaPort> = {};
  for (const [name, dma] of Object.entries(devices)) {
    ports[name] = m.attach({
      name,
      type: "test",
      dma,
      registers: { read32: () => 0, write32: () => {} },
    }).dma;
  }
  const regions = m.memmap.ofType("ram").map((r) => ({ base: r.base, size: r.size }));
  const parts = kernelParts(m.ram, m.memmap.ramEnd(), regions);
  const iommuBase = m.iommu!.base;
  const iommu = new IommuDriver(
    {
      ram: m.ram,
      regs: {
        read32: (off) => m.bus.read32(iommuBase + off),
        write32: (off, v) => m.bus.write32(iommuBase + off, v),
      },
      allocTable: () => {
        const pfn = parts.uvm.pageAlloc();
        return pfn < 0 ? -1 : pfn * IOMMU_PAGE;
      },
      freeTable: (pa) => parts.uvm.pageFree(pa / IOMMU_PAGE),
    },
    m.iommu!.scope.map((s) => ({ ...s, limits: m.device(s.name)!.dma })),
  );
  const dma = new BusDma(parts.backend, { bouncePages, iommu });
  return { m, ports, iommu, dma, ...parts };
}

/** The code of the KernelError `f` throws, or null when it throws none. */
export function code(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return e.code;
  }
}

/** The map's segments as [address, length] pairs. */
export function segsOf(map: DmaMap): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < map.nsegs; i++) out.push([map.segAddr(i), map.segLen(i)]);
  return out;
}
