/**
 * Boot and heap benchmarks.
 *
 * - `boot-64g`: power on a 64 GiB `big` machine and bring its kernel up to
 *   ready (memory map, physload, page array, free lists, arenas, heap),
 *   against `fill-64g`: one `Int32Array.prototype.fill` over one 32-bit word
 *   per page of that machine, the least a page array set up page by page
 *   can cost. `boot-1t` does the same for a 1 TiB `pc` machine.
 * - `check-64g` and `check-1t`: `Kernel.check()` of such a machine just
 *   booted (the machine, the page allocator, the pmap, the heap), which
 *   costs what the guest touched, not its size.
 * - `kmem-alloc-free 64` and `kmem-alloc-free 4096`: one kmem_alloc and one
 *   kmem_free on a booted kernel (64 bytes come from a quantum cache).
 *
 *     deno run -A bench/boot.ts [--json] [--filter REGEX]
 *     bun bench/boot.ts [--json] [--filter REGEX]
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { bench, do_not_optimize, summary } from "mitata";
import { benchFilter, runMatching } from "./_filter.ts";
import { createMachine } from "../machine/mod.ts";
import { Kernel } from "../boot/kernel.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { json: { type: "boolean", default: false }, filter: { type: "string" } },
});

const PAGES_64G = 64 * 2 ** 30 / 4096;

summary(() => {
  bench("fill-64g", function* () {
    // The array is made outside the timed part: only the fill is measured.
    yield {
      [0]: () => new Int32Array(PAGES_64G),
      bench: (a: Int32Array) => do_not_optimize(a.fill(-1)),
    };
  }).gc("inner");

  bench("boot-64g", () => {
    const k = new Kernel(createMachine({ preset: "big" }));
    do_not_optimize(k.bootFree);
  }).gc("inner");

  bench("boot-1t", () => {
    const k = new Kernel(createMachine({ preset: "pc", ramSize: 2 ** 40 }));
    do_not_optimize(k.bootFree);
  }).gc("inner");
});

summary(() => {
  const k64 = new Kernel(createMachine({ preset: "big" }));
  bench("check-64g", () => k64.check());
  const k1t = new Kernel(createMachine({ preset: "pc", ramSize: 2 ** 40 }));
  bench("check-1t", () => k1t.check());
});

const kernel = new Kernel(createMachine({ preset: "pc", ramSize: 256 * 2 ** 20 }));
for (const size of [64, 4096]) {
  // Warm the heap so the benchmark sees its steady state.
  kernel.kmem.free(kernel.kmem.alloc(size), size);
  bench(`kmem-alloc-free ${size}`, () => {
    const va = kernel.kmem.alloc(size);
    kernel.kmem.free(va, size);
  });
}

await runMatching(benchFilter(values.filter), values.json);
