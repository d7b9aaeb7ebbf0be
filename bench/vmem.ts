/**
 * vmem benchmarks of both flavors: the workloads of docs/workloads.md
 * (vmem-churn, vmem-xalloc, vmem-frag-1k, vmem-frag-1m) under those names,
 * the churn under each allocation policy in one group with instant-fit's
 * vmem-churn, and quantum-cache pairs (the same sizes with and without
 * quantum caches); then FreeBSD's arena on the same workloads with first-fit
 * (the same names ending in `-freebsd`, see `_vmem_freebsd.ts`). `--filter`
 * matches benchmark names.
 *
 *     deno run -A bench/vmem.ts [--json] [--filter REGEX] [--native DIR] [--native-freebsd DIR]
 *     bun bench/vmem.ts [--json] [--filter REGEX] [--native DIR] [--native-freebsd DIR]
 *
 * With `--native DIR` (a build directory of the illumos reference, holding
 * vmem-oracle-nodebug), the four workloads run there too, just before
 * their benchmarks and again after the run, and each is printed with its
 * TS/native ratio (see `_native.ts`); `--native-freebsd DIR` does the same
 * with the FreeBSD reference and its `--policy firstfit`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { bench, group, summary } from "mitata";
import { benchFilter, runMatching } from "./_filter.ts";
import { Mulberry32 } from "../mm/random.ts";
import { VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT, VM_NOSLEEP, Vmem } from "../mm/vmem.ts";
import { benchBeside, type MitataRun, NativeComparison, nativeOption } from "./_native.ts";
import { FREEBSD_NATIVE, freebsdBenchmarks } from "./_vmem_freebsd.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    filter: { type: "string" },
    ...nativeOption,
    "native-freebsd": { type: "string" },
  },
});

/** The illumos reference (`--native`), on the four workloads of docs/workloads.md. */
const native = new NativeComparison(values.native, "vmem-oracle-nodebug", [
  "vmem-churn",
  "vmem-xalloc",
  "vmem-frag-1k",
  "vmem-frag-1m",
]);
/** The FreeBSD reference (`--native-freebsd`), on the same workloads with first-fit. */
const nativeFreebsd = new NativeComparison(
  values["native-freebsd"],
  "vmem-oracle-nodebug",
  FREEBSD_NATIVE,
);

const GiB4 = 2 ** 32;
const PAGE = 4096;
const SLOTS = 10_000;
/** Sizes allocated and freed by one iteration of the quantum-cache allocfree benchmarks. */
const SIZES = 1024;

/**
 * `x % n` for the unsigned 32-bit draws of the workloads. V8 compiles `%` of
 * a number of 2^31 or more into a call to a floating-point remainder routine
 * that costs a fifth of a vmem operation; this computes the same value in a
 * few instructions, so the benchmarks time vmem rather than the dice.
 */
function mod(x: number, n: number): number {
  return x - Math.floor(x / n) * n;
}

function failed(what: string): never {
  throw new Error(`benchmark set-up: ${what} failed`);
}

/** vmem-churn (and its per-policy variants): free a random slot, allocate a new size into it. */
function churn(name: string, policy: number): void {
  const vmp = Vmem.create(name, GiB4, 2 ** 40, PAGE);
  const r = new Mulberry32(1);
  const addr = new Float64Array(SLOTS);
  const size = new Float64Array(SLOTS);
  const flags = VM_NOSLEEP | policy;
  for (let i = 0; i < SLOTS; i++) {
    size[i] = (mod(r.next(), 16) + 1) * PAGE;
    addr[i] = vmp.alloc(size[i]!, flags) || failed(name);
  }
  benchBeside(native, name, () => {
    const i = mod(r.next(), SLOTS);
    vmp.free(addr[i]!, size[i]!);
    const s = (mod(r.next(), 16) + 1) * PAGE;
    size[i] = s;
    addr[i] = vmp.alloc(s, flags);
  });
}

/** vmem-xalloc: constrained churn (nocross 1 MiB, align 4 KiB..64 KiB). */
function xallocChurn(): void {
  const vmp = Vmem.create("vmem-xalloc", GiB4, GiB4, PAGE);
  const r = new Mulberry32(1);
  const addr = new Float64Array(SLOTS);
  const size = new Float64Array(SLOTS);
  const MiB = 1 << 20;
  for (let i = 0; i < SLOTS; i++) {
    size[i] = (mod(r.next(), 8) + 1) * PAGE;
    const align = PAGE << (mod(r.next(), 5));
    addr[i] = vmp.xalloc(size[i]!, align, 0, MiB, 0, 0, VM_NOSLEEP) || failed("vmem-xalloc");
  }
  benchBeside(native, "vmem-xalloc", () => {
    const i = mod(r.next(), SLOTS);
    vmp.xfree(addr[i]!, size[i]!);
    const s = (mod(r.next(), 8) + 1) * PAGE;
    const align = PAGE << (mod(r.next(), 5));
    size[i] = s;
    addr[i] = vmp.xalloc(s, align, 0, MiB, 0, 0, VM_NOSLEEP);
  });
}

/** vmem-frag-N: N one-unit holes between allocated units; allocate one and free it. */
function frag(name: string, n: number): void {
  const vmp = Vmem.create(name, GiB4, 2 ** 40, 1);
  const blocks = new Float64Array(2 * n);
  for (let i = 0; i < 2 * n; i++) blocks[i] = vmp.alloc(1, VM_NOSLEEP) || failed(name);
  for (let i = 0; i < 2 * n; i += 2) vmp.free(blocks[i]!, 1);
  benchBeside(native, name, () => {
    // No do_not_optimize(a): the free uses it, and handing it to another
    // function would box it under V8, an allocation that is not vmem's.
    vmp.free(vmp.alloc(1, VM_NOSLEEP), 1);
  });
}

/**
 * Sizes of 1..8 pages allocated and freed from an arena without and with
 * quantum caches up to 8 pages, 256 blocks staying allocated so neither
 * arena is empty. One iteration allocates and frees, one after the other,
 * each of SIZES sizes drawn once. A cached pair takes under 20 ns: timed one
 * pair per call, the harness's call into the closure (under Deno about 6 ns
 * a pair when the engine does not inline the closure into the harness's
 * loop) would weigh as much as the allocator.
 * Each arena gets its own closure (V8 shares type feedback, and so optimized
 * code, between closures made from one function literal, which would time
 * the second of a pair with code shaped by the first).
 */
function qcacheAllocFree(): void {
  const sizes = new Float64Array(SIZES);
  const r = new Mulberry32(7);
  for (let i = 0; i < sizes.length; i++) sizes[i] = (mod(r.next(), 8) + 1) * PAGE;
  const arena = (name: string, qmax: number): Vmem => {
    const vmp = Vmem.create(name, GiB4, 2 ** 40, PAGE, { qcacheMax: qmax });
    for (let i = 0; i < 256; i++) vmp.alloc(sizes[i]!, VM_NOSLEEP) || failed(name);
    return vmp;
  };
  const a0 = arena("vmem-noqcache-allocfree", 0);
  bench("vmem-noqcache-allocfree", () => {
    for (let i = 0; i < SIZES; i++) {
      const s = sizes[i]!;
      a0.free(a0.alloc(s, VM_NOSLEEP), s);
    }
  });
  const a1 = arena("vmem-qcache-allocfree", 8 * PAGE);
  bench("vmem-qcache-allocfree", () => {
    for (let i = 0; i < SIZES; i++) {
      const s = sizes[i]!;
      a1.free(a1.alloc(s, VM_NOSLEEP), s);
    }
  });
}

/**
 * The churn of vmem-churn in an arena without and with quantum caches up to
 * 16 pages (one iteration: one free and one allocation). Closures as in
 * {@link qcacheAllocFree}.
 */
function qcacheChurn(): void {
  const arena = (name: string, qmax: number) => {
    const vmp = Vmem.create(name, GiB4, 2 ** 40, PAGE, { qcacheMax: qmax });
    const rr = new Mulberry32(1);
    const addr = new Float64Array(SLOTS);
    const size = new Float64Array(SLOTS);
    for (let i = 0; i < SLOTS; i++) {
      size[i] = (mod(rr.next(), 16) + 1) * PAGE;
      addr[i] = vmp.alloc(size[i]!, VM_NOSLEEP) || failed(name);
    }
    return { vmp, rr, addr, size };
  };
  const c0 = arena("vmem-noqcache-churn", 0);
  bench("vmem-noqcache-churn", () => {
    const i = mod(c0.rr.next(), SLOTS);
    c0.vmp.free(c0.addr[i]!, c0.size[i]!);
    const s = (mod(c0.rr.next(), 16) + 1) * PAGE;
    c0.size[i] = s;
    c0.addr[i] = c0.vmp.alloc(s, VM_NOSLEEP);
  });
  const c1 = arena("vmem-qcache-churn", 16 * PAGE);
  bench("vmem-qcache-churn", () => {
    const i = mod(c1.rr.next(), SLOTS);
    c1.vmp.free(c1.addr[i]!, c1.size[i]!);
    const s = (mod(c1.rr.next(), 16) + 1) * PAGE;
    c1.size[i] = s;
    c1.addr[i] = c1.vmp.alloc(s, VM_NOSLEEP);
  });
}

const filter = benchFilter(values.filter);
const want = (name: string) => filter.test(name);

// The four policies on one churn: instant-fit (vmem-churn, the default) beside the others.
summary(() => {
  if (want("vmem-churn")) churn("vmem-churn", 0);
  if (want("vmem-churn-bestfit")) churn("vmem-churn-bestfit", VM_BESTFIT);
  if (want("vmem-churn-firstfit")) churn("vmem-churn-firstfit", VM_FIRSTFIT);
  if (want("vmem-churn-nextfit")) churn("vmem-churn-nextfit", VM_NEXTFIT);
});
group(() => {
  if (want("vmem-xalloc")) xallocChurn();
  if (want("vmem-frag-1k")) frag("vmem-frag-1k", 1_000);
  if (want("vmem-frag-1m")) frag("vmem-frag-1m", 1_000_000);
});
summary(() => {
  if (want("vmem-noqcache-allocfree") || want("vmem-qcache-allocfree")) qcacheAllocFree();
});
summary(() => {
  if (want("vmem-noqcache-churn") || want("vmem-qcache-churn")) qcacheChurn();
});

freebsdBenchmarks(want, nativeFreebsd);

const result: MitataRun = await runMatching(filter, values.json);
// Beside JSON on standard output, the tables go to standard error.
const print = values.json
  ? (line: string) => console.error(line)
  : (line: string) => console.log(line);
native.report(result, print);
nativeFreebsd.report(result, print);
