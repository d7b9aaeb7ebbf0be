/**
 * The FreeBSD flavor's vmem benchmarks, which bench/vmem.ts runs beside
 * illumos's: the four vmem workloads (vmem-churn, vmem-xalloc, vmem-frag-1k,
 * vmem-frag-1m), the same operations in the same order with first-fit in
 * place of instant-fit, under the names vmem-churn-freebsd,
 * vmem-xalloc-freebsd, vmem-frag-1k-freebsd and vmem-frag-1m-freebsd; the
 * churn under best-fit; and the quantum-cache pair
 * vmem-freebsd-noqcache-allocfree and vmem-freebsd-qcache-allocfree (the same
 * sizes without and with quantum caches).
 *
 * The workloads are written again here rather than shared with bench/vmem.ts
 * through an arena parameter: V8 keeps type feedback per function, so one
 * workload function driving both flavors would time polymorphic calls in
 * both.
 *
 * @module
 */

import { bench, summary } from "mitata";
import { Mulberry32 } from "../mm/random.ts";
import { benchBeside, type NativeComparison } from "./_native.ts";
import { M_BESTFIT, M_FIRSTFIT, M_NOWAIT, VmemFreeBSD } from "../mm/vmem_freebsd.ts";

/** The FreeBSD workloads and the names of the reference's workloads they repeat, with its policy. */
export const FREEBSD_NATIVE: readonly { name: string; bench: string; args: string[] }[] = [
  "vmem-churn",
  "vmem-xalloc",
  "vmem-frag-1k",
  "vmem-frag-1m",
].map((bench) => ({ name: `${bench}-freebsd`, bench, args: ["--policy", "firstfit"] }));

const GiB4 = 2 ** 32;
const PAGE = 4096;
const SLOTS = 10_000;
/** Sizes allocated and freed by one iteration of the quantum-cache allocfree benchmarks. */
const SIZES = 1024;

/** `x % n` for unsigned 32-bit draws without V8's slow float remainder (as bench/vmem.ts). */
function mod(x: number, n: number): number {
  return x - Math.floor(x / n) * n;
}

function failed(what: string): never {
  throw new Error(`benchmark set-up: ${what} failed`);
}

/** vmem-churn: free a random slot, allocate a new size into it. */
function churn(name: string, policy: number, native: NativeComparison): void {
  const vm = VmemFreeBSD.create(name, GiB4, 2 ** 40, PAGE);
  const r = new Mulberry32(1);
  const addr = new Float64Array(SLOTS);
  const size = new Float64Array(SLOTS);
  const flags = M_NOWAIT | policy;
  for (let i = 0; i < SLOTS; i++) {
    size[i] = (mod(r.next(), 16) + 1) * PAGE;
    addr[i] = vm.alloc(size[i]!, flags);
    if (addr[i]! < 0) failed(name);
  }
  benchBeside(native, name, () => {
    const i = mod(r.next(), SLOTS);
    vm.free(addr[i]!, size[i]!);
    const s = (mod(r.next(), 16) + 1) * PAGE;
    size[i] = s;
    addr[i] = vm.alloc(s, flags);
  });
}

/** vmem-xalloc: constrained churn (nocross 1 MiB, align 4 KiB..64 KiB). */
function xallocChurn(native: NativeComparison): void {
  const vm = VmemFreeBSD.create("vmem-xalloc-freebsd", GiB4, GiB4, PAGE);
  const r = new Mulberry32(1);
  const addr = new Float64Array(SLOTS);
  const size = new Float64Array(SLOTS);
  const MiB = 1 << 20;
  const flags = M_NOWAIT | M_FIRSTFIT;
  for (let i = 0; i < SLOTS; i++) {
    size[i] = (mod(r.next(), 8) + 1) * PAGE;
    const align = PAGE << (mod(r.next(), 5));
    addr[i] = vm.xalloc(size[i]!, align, 0, MiB, 0, 0, flags);
    if (addr[i]! < 0) failed("vmem-xalloc-freebsd");
  }
  benchBeside(native, "vmem-xalloc-freebsd", () => {
    const i = mod(r.next(), SLOTS);
    vm.xfree(addr[i]!, size[i]!);
    const s = (mod(r.next(), 8) + 1) * PAGE;
    const align = PAGE << (mod(r.next(), 5));
    size[i] = s;
    addr[i] = vm.xalloc(s, align, 0, MiB, 0, 0, flags);
  });
}

/** vmem-frag-N: N one-unit holes between allocated units; allocate one and free it. */
function frag(name: string, n: number, native: NativeComparison): void {
  const vm = VmemFreeBSD.create(name, GiB4, 2 ** 40, 1);
  const blocks = new Float64Array(2 * n);
  const flags = M_NOWAIT | M_FIRSTFIT;
  for (let i = 0; i < 2 * n; i++) {
    blocks[i] = vm.alloc(1, flags);
    if (blocks[i]! < 0) failed(name);
  }
  for (let i = 0; i < 2 * n; i += 2) vm.free(blocks[i]!, 1);
  benchBeside(native, name, () => {
    vm.free(vm.alloc(1, flags), 1);
  });
}

/**
 * bench/vmem.ts's quantum-cache pair with first-fit: sizes of 1..8 pages
 * allocated and freed, one after the other, each of SIZES sizes drawn once
 * per iteration, from an arena without and with quantum caches up to 8
 * pages, 256 blocks staying allocated so neither arena is empty. Each arena
 * gets its own closure, as there (V8 shares type feedback between closures
 * of one function literal).
 */
function qcacheAllocFree(): void {
  const sizes = new Float64Array(SIZES);
  const r = new Mulberry32(7);
  for (let i = 0; i < sizes.length; i++) sizes[i] = (mod(r.next(), 8) + 1) * PAGE;
  const flags = M_NOWAIT | M_FIRSTFIT;
  const arena = (name: string, qcacheMax: number): VmemFreeBSD => {
    const vm = VmemFreeBSD.create(name, GiB4, 2 ** 40, PAGE, { qcacheMax });
    for (let i = 0; i < 256; i++) if (vm.alloc(sizes[i]!, flags) < 0) failed(name);
    return vm;
  };
  const a0 = arena("vmem-freebsd-noqcache-allocfree", 0);
  bench("vmem-freebsd-noqcache-allocfree", () => {
    for (let i = 0; i < SIZES; i++) {
      const s = sizes[i]!;
      a0.free(a0.alloc(s, flags), s);
    }
  });
  const a1 = arena("vmem-freebsd-qcache-allocfree", 8 * PAGE);
  bench("vmem-freebsd-qcache-allocfree", () => {
    for (let i = 0; i < SIZES; i++) {
      const s = sizes[i]!;
      a1.free(a1.alloc(s, flags), s);
    }
  });
}

/**
 * Registers, in groups of their own, the benchmarks whose names `want`
 * accepts; `native` times the reference's workloads beside them.
 */
export function freebsdBenchmarks(
  want: (name: string) => boolean,
  native: NativeComparison,
): void {
  summary(() => {
    if (want("vmem-churn-freebsd")) churn("vmem-churn-freebsd", M_FIRSTFIT, native);
    if (want("vmem-xalloc-freebsd")) xallocChurn(native);
    if (want("vmem-frag-1k-freebsd")) frag("vmem-frag-1k-freebsd", 1_000, native);
    if (want("vmem-frag-1m-freebsd")) frag("vmem-frag-1m-freebsd", 1_000_000, native);
  });
  summary(() => {
    if (want("vmem-churn-freebsd-bestfit")) churn("vmem-churn-freebsd-bestfit", M_BESTFIT, native);
  });
  summary(() => {
    if (want("vmem-freebsd-noqcache-allocfree") || want("vmem-freebsd-qcache-allocfree")) {
      qcacheAllocFree();
    }
  });
}
