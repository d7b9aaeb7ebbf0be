/**
 * Guest RAM hot paths against a flat typed array of the same size (the
 * fastest a RAM could be without slots, chunks or checks):
 *
 *     deno run -A machine/ram_bench.ts [--json]
 *     bun machine/ram_bench.ts [--json]
 *
 * Each RAM is 64 MiB of one slot, fully written first so that chunk
 * materialisation is not measured; the bench names say the chunk size.
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { bench, do_not_optimize, run, summary } from "mitata";
import { Ram } from "./ram.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { json: { type: "boolean", default: false } },
});

const SIZE = 64 * 1024 * 1024;
const PAGES = SIZE / 4096;

function filledRam(chunkSize: number): Ram {
  const ram = new Ram([{ base: 0x100000, size: SIZE }], { chunkSize });
  ram.fill(0x100000, SIZE, 0x5a);
  return ram;
}

const flat = new Uint8Array(SIZE).fill(0x5a);
const flatView = new DataView(flat.buffer);
const page = new Uint8Array(4096);
const rams: [string, Ram][] = [["64K", filledRam(65536)], ["1M", filledRam(1 << 20)]];

// Walks of addresses: each step moves 4 bytes within a page, pages chosen by a fixed LCG.
let seq = 1;
const nextPage = (): number => (seq = (seq * 1103515245 + 12345) >>> 0) % PAGES;

summary(() => {
  let a = 0;
  bench("read32 flat", () => {
    a = (a + 4) & (SIZE - 4);
    return do_not_optimize(flatView.getUint32(a, true));
  });
  for (const [name, ram] of rams) {
    let b = 0;
    bench(`read32 ram ${name}`, () => {
      b = (b + 4) & (SIZE - 4);
      return do_not_optimize(ram.read32(0x100000 + b));
    });
  }
});

summary(() => {
  let a = 0;
  bench("write32 flat", () => {
    a = (a + 4) & (SIZE - 4);
    flatView.setUint32(a, a, true);
  });
  for (const [name, ram] of rams) {
    let b = 0;
    bench(`write32 ram ${name}`, () => {
      b = (b + 4) & (SIZE - 4);
      ram.write32(0x100000 + b, b);
    });
  }
});

summary(() => {
  bench("read 4K page flat", () => {
    const p = nextPage() * 4096;
    page.set(flat.subarray(p, p + 4096));
  });
  for (const [name, ram] of rams) {
    bench(`read 4K page ram ${name}`, () => ram.read(0x100000 + nextPage() * 4096, page));
  }
});

summary(() => {
  bench("write 4K page flat", () => flat.set(page, nextPage() * 4096));
  for (const [name, ram] of rams) {
    bench(`write 4K page ram ${name}`, () => ram.write(0x100000 + nextPage() * 4096, page));
  }
});

summary(() => {
  bench("copy 4K page flat", () => {
    const s = nextPage() * 4096;
    flat.copyWithin(nextPage() * 4096, s, s + 4096);
  });
  for (const [name, ram] of rams) {
    bench(
      `copy 4K page ram ${name}`,
      () => ram.copy(0x100000 + nextPage() * 4096, 0x100000 + nextPage() * 4096, 4096),
    );
  }
});

if (values.json) await run({ format: "json" });
else await run();
