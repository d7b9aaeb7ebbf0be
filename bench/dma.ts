/**
 * DMA benchmarks.
 *
 * - `dma-sg-64k`: one 64 KiB scatter-gather transfer through bus_dma, as a
 *   block write does it: bus_dmamap_load of a 64 KiB kmem buffer with the
 *   NVMe driver's tag (pages as segments: 16 of them), sync PREWRITE, the
 *   device's DMA port gathering the segments out of guest RAM into a device
 *   buffer (every segment checked against the device's constraints), sync
 *   POSTWRITE, unload;
 * - `memcpy-64k`: a plain `Uint8Array.prototype.set` of 64 KiB, the least
 *   any copy of those bytes can cost.
 *
 * The target is dma-sg-64k within twice memcpy-64k's time. The floor of a
 * 16-segment gather is 16 separate page copies, about 1.25 times one 64 KiB
 * copy on its own; the rest is bus_dma's page walk (the pmap's entries for
 * the buffer's range, read in one pass) and the checks of the segment list
 * (the port's constraints, then RAM's own check that every segment is RAM).
 *
 * A second group times those parts on their own, to show where the time
 * goes: `page-copies-64k` (the 16 copies, from one host buffer's page views
 * in the same descending order), `dma-load-64k` (load and unload) and
 * `dma-port-64k` (the port's gather of an already loaded segment list).
 *
 * Both copies use source and destination arrays whose start addresses are
 * 2 KiB apart modulo 4 KiB: back-to-back 64 KiB allocations can land at a
 * distance the host's memmove handles an order of magnitude slower (seen
 * under Deno), which would make the baseline meaningless.
 *
 *     deno run -A bench/dma.ts [--json]
 *     bun bench/dma.ts [--json]
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "../boot/kernel.ts";
import { BUS_DMASYNC_POSTWRITE, BUS_DMASYNC_PREWRITE } from "../mm/bus_dma.ts";
import { NvmeDriver, NvmeModel } from "../devices/mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { json: { type: "boolean", default: false } },
});

const SIZE = 65536;

const machine = createMachine({ preset: "pc", ramSize: 256 * 2 ** 20 });
new NvmeModel(machine);
const kernel = new Kernel(machine);
const nvme = kernel.drivers.find((d) => d instanceof NvmeDriver) as NvmeDriver;
const port = machine.devices.find((d) => d.name === nvme.name)!.port;
const busDma = kernel.busDma;
const map = nvme.map;
const va = kernel.kmem.alloc(SIZE);
const data = new Uint8Array(SIZE).map((_, i) => (i * 31 + 7) & 0xff);
kernel.pmap.write(va, data);
const device = new Uint8Array(SIZE + 2048).subarray(2048);
const copyArea = new Uint8Array(2 * SIZE + 2048);
const src = copyArea.subarray(0, SIZE).fill(0x5a);
const dst = copyArea.subarray(SIZE + 2048);

/** One transfer; returns the bytes the device gathered. */
function sg64k(): number {
  busDma.load(map, va, SIZE);
  busDma.sync(map, BUS_DMASYNC_PREWRITE);
  const n = port.readSg(map.segs, map.nsegs, device);
  busDma.sync(map, BUS_DMASYNC_POSTWRITE);
  busDma.unload(map);
  return n;
}

// The transfer really moves the buffer, in 16 or 17 page-sized segments.
if (sg64k() !== SIZE || !device.every((b, i) => b === data[i])) {
  throw new Error("dma-sg-64k did not move the buffer");
}
busDma.load(map, va, SIZE);
if (map.nsegs < SIZE / 4096 || map.bouncedBytes !== 0) throw new Error("unexpected segments");
busDma.unload(map);

summary(() => {
  bench("memcpy-64k", () => {
    dst.set(src);
    do_not_optimize(dst);
  });
  bench("dma-sg-64k", () => do_not_optimize(sg64k()));
});

// The parts. The segment list of one load, kept for the port on its own.
busDma.load(map, va, SIZE);
const segs = map.segs.slice(0, 2 * map.nsegs);
const nsegs = map.nsegs;
busDma.unload(map);
const pages = Array.from(
  { length: SIZE / 4096 },
  (_, i) => src.subarray(SIZE - (i + 1) * 4096, SIZE - i * 4096),
);

group("parts", () => {
  bench("page-copies-64k", () => {
    for (let i = 0; i < pages.length; i++) device.set(pages[i]!, i * 4096);
    do_not_optimize(device);
  });
  bench("dma-load-64k", () => {
    busDma.load(map, va, SIZE);
    busDma.unload(map);
    do_not_optimize(map);
  });
  bench("dma-port-64k", () => do_not_optimize(port.readSg(segs, nsegs, device)));
});

await run(values.json ? { format: "json" } : {});
