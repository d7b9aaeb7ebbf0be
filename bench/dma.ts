/**
 * DMA benchmarks.
 *
 * - `dma-sg-64k`: one 64 KiB scatter-gather transfer through bus_dma, as a
 *   block write does it: bus_dmamap_load_raw of a 64 KiB DMA buffer into the
 *   NVMe driver's map (its tag cuts pages into segments: 16 of them), sync
 *   PREWRITE, the device's DMA port gathering the segments out of guest RAM
 *   into a device buffer (every segment checked against the device's
 *   limits), sync POSTWRITE, unload. The buffer is DMA memory from one
 *   ascending contiguous run of pages, aligned to RAM's 64 KiB chunk, so the
 *   port finds its 16 segments contiguous and RAM copies them in one piece;
 * - `dma-sg-64k-iommu`: the same transfer with the NVMe device behind the
 *   IOMMU: the load takes 64 KiB of I/O virtual space from the domain's
 *   quantum cache and maps 16 pages, the port translates the 16 pages (the
 *   IOTLB misses: the last unload invalidated them) into one run of RAM,
 *   and the unload unmaps the pages, invalidates them and frees the space;
 * - `memcpy-64k`: a plain `Uint8Array.prototype.set` of 64 KiB, the least
 *   any copy of those bytes can cost.
 *
 * The target is dma-sg-64k within 1.3 times memcpy-64k's time.
 *
 * A second group shows where the time goes: `dma-sg-64k-kmem` (the same
 * transfer from a kmem buffer, whose pages are scattered: 16 copies),
 * `page-copies-64k` (16 page copies from one host buffer's page views),
 * `dma-load-64k` (load and unload of the DMA buffer) and `dma-port-64k` (the
 * port's gather of an already loaded segment list).
 *
 * Copies use source and destination arrays whose start addresses are 2 KiB
 * apart modulo 4 KiB: back-to-back 64 KiB allocations can land at a
 * distance the host's memmove handles an order of magnitude slower (seen
 * under Deno), which would make the baseline meaningless.
 *
 *     deno run -A bench/dma.ts [--json] [--filter REGEX]
 *     bun bench/dma.ts [--json] [--filter REGEX]
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { bench, do_not_optimize, group, summary } from "mitata";
import { benchFilter, runMatching } from "./_filter.ts";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "../boot/kernel.ts";
import { BUS_DMASYNC_POSTWRITE, BUS_DMASYNC_PREWRITE } from "../mm/bus_dma.ts";
import { NvmeDriver, NvmeModel } from "../devices/mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { json: { type: "boolean", default: false }, filter: { type: "string" } },
});

const SIZE = 65536;
const data = new Uint8Array(SIZE).map((_, i) => (i * 31 + 7) & 0xff);

/**
 * A 256 MiB machine with the NVMe device (behind an IOMMU the kernel uses,
 * with `iommu`), its driver's data map, and a 64 KiB DMA buffer holding
 * `data`: one contiguous run, on a 64 KiB chunk.
 */
function rig(iommu: boolean) {
  const machine = createMachine({ preset: "pc", ramSize: 256 * 2 ** 20, iommu });
  new NvmeModel(machine);
  const kernel = new Kernel(machine, { iommu });
  const nvme = kernel.drivers.find((d) => d instanceof NvmeDriver) as NvmeDriver;
  const port = machine.devices.find((d) => d.name === nvme.name)!.port;
  const busDma = kernel.busDma;
  const buffer = busDma.dmamemAlloc(busDma.createTag("bench buffer", {}), SIZE, {
    alignment: SIZE,
    nsegs: 1,
  });
  kernel.pmap.write(buffer.kva, data);
  return { kernel, port, busDma, map: nvme.map, buffer };
}

const { kernel, port, busDma, map, buffer } = rig(false);
const va = kernel.kmem.alloc(SIZE);
kernel.pmap.write(va, data);
const io = rig(true);
const device = new Uint8Array(SIZE + 2048).subarray(2048);
const copyArea = new Uint8Array(2 * SIZE + 2048);
const src = copyArea.subarray(0, SIZE).fill(0x5a);
const dst = copyArea.subarray(SIZE + 2048);

/** The rest of a transfer once the map is loaded; returns the bytes the device gathered. */
function gather(): number {
  busDma.sync(map, BUS_DMASYNC_PREWRITE);
  const n = port.readSg(map.segs, map.nsegs, device);
  busDma.sync(map, BUS_DMASYNC_POSTWRITE);
  busDma.unload(map);
  return n;
}

/** One transfer of the DMA buffer. */
function sg64k(): number {
  busDma.loadMemory(map, buffer, SIZE);
  return gather();
}

/** The same from the kmem buffer. */
function sg64kKmem(): number {
  busDma.load(map, va, SIZE);
  return gather();
}

/** One transfer of the DMA buffer through the IOMMU. */
function sg64kIommu(): number {
  io.busDma.loadMemory(io.map, io.buffer, SIZE);
  io.busDma.sync(io.map, BUS_DMASYNC_PREWRITE);
  const n = io.port.readSg(io.map.segs, io.map.nsegs, device);
  io.busDma.sync(io.map, BUS_DMASYNC_POSTWRITE);
  io.busDma.unload(io.map);
  return n;
}

// The transfers really move the buffer, in 16 page-sized segments.
for (const f of [sg64k, sg64kKmem, sg64kIommu]) {
  device.fill(0);
  if (f() !== SIZE || !device.every((b, i) => b === data[i])) {
    throw new Error(`${f.name} did not move the buffer`);
  }
}
busDma.loadMemory(map, buffer, SIZE);
if (map.nsegs !== SIZE / 4096 || map.bouncedBytes !== 0) throw new Error("unexpected segments");
busDma.unload(map);
io.busDma.loadMemory(io.map, io.buffer, SIZE);
if (io.map.nsegs !== SIZE / 4096 || io.map.segAddr(0) === io.buffer.segs[0]![0]) {
  throw new Error("the IOMMU transfer is not translated");
}
io.busDma.unload(io.map);

summary(() => {
  bench("memcpy-64k", () => {
    dst.set(src);
    do_not_optimize(dst);
  });
  bench("dma-sg-64k", () => do_not_optimize(sg64k()));
  bench("dma-sg-64k-iommu", () => do_not_optimize(sg64kIommu()));
});

// The parts. The segment list of one load, kept for the port on its own.
busDma.loadMemory(map, buffer, SIZE);
const segs = map.segs.slice(0, 2 * map.nsegs);
const nsegs = map.nsegs;
busDma.unload(map);
const pages = Array.from(
  { length: SIZE / 4096 },
  (_, i) => src.subarray(SIZE - (i + 1) * 4096, SIZE - i * 4096),
);

group("parts", () => {
  bench("dma-sg-64k-kmem", () => do_not_optimize(sg64kKmem()));
  bench("page-copies-64k", () => {
    for (let i = 0; i < pages.length; i++) device.set(pages[i]!, i * 4096);
    do_not_optimize(device);
  });
  bench("dma-load-64k", () => {
    busDma.loadMemory(map, buffer, SIZE);
    busDma.unload(map);
    do_not_optimize(map);
  });
  bench("dma-port-64k", () => do_not_optimize(port.readSg(segs, nsegs, device)));
});

await runMatching(benchFilter(values.filter), values.json);
