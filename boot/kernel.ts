/**
 * The kernel: brings a machine up in the order a real one does and owns
 * everything it brought up.
 *
 *     memory map (firmware) -> physload -> page array -> free lists
 *       -> page daemon -> pmap -> arenas -> heap -> IOMMU -> bus_dma -> devices
 *
 * The kernel image sits at 1 MiB, as a PC loader puts it; its frames exist
 * but never start free. The page daemon is plugged into the page allocator
 * as uvm_reclaimable, uvm_wait and uvm_kick_pdaemon, and wakes the heap's
 * sleepers after each run that freed pages. The heap lives in a kernel
 * virtual window at {@link KVA_BASE} whose pages the pmap maps to RAM.
 *
 * The devices stage (autoconfiguration) attaches to each device the
 * machine's table lists the driver its registry holds for the device's type
 * (the built-in drivers, and any added to the registry given in the
 * options), and logs the device's DMA limits as its tag describes them.
 * Drivers see the kernel only through the interface of
 * `devices/kernel_if.ts`, which the Kernel implements. They take their DMA
 * memory, maps and bounce reservations at attach (the first reservation
 * takes bus_dma's bounce pool), so {@link Kernel.bootFree} is counted before
 * them, and {@link Kernel.shutdown} detaches them before anything else is
 * torn down and reports what a driver left behind (interrupt handlers, maps,
 * DMA memory, tags) as leaks. With `dmaDebug` bus_dma tracks every map and
 * every device transfer (`mm/dma_debug.ts`).
 *
 * With `iommu` the kernel takes over the machine's IOMMU before bus_dma
 * comes up (`mm/iommu.ts`): every device in its scope gets a domain, its
 * tags hand out I/O virtual addresses, and its DMA is translated. The
 * domains' root tables are taken after {@link Kernel.bootFree} is counted
 * and given back at shutdown, which counts I/O virtual space still held and
 * page-table pages still in use as leaks.
 *
 * Everything a boot does is logged through `log` in lines a person can
 * follow, and {@link Kernel.summary} reports the state: RAM, free pages per
 * free list, arenas, page-daemon activity and leaks.
 *
 * @module
 */

import type { Bus, Clock, InterruptController, Machine } from "../machine/mod.ts";
import { describe, KernelError } from "../mm/errors.ts";
import { loadRam, Uvm } from "../mm/page.ts";
import { type PageList, pglistAlloc, pglistAllocWait, pglistFree } from "../mm/pglist.ts";
import {
  type PhysSegStrategy,
  VM_FREELIST_DEFAULT,
  VM_FREELIST_FIRST16,
  VM_FREELIST_FIRST4G,
  VM_NFREELIST,
} from "../mm/physseg.ts";
import { Pmap } from "../mm/pmap.ts";
import { Kmem, type KmemPolicy, OWNER_CACHE, OWNER_DMA, type VmemRecorder } from "../mm/kmem.ts";
import {
  type BouncePoolStats,
  BusDma,
  type BusDmaStats,
  type DmaBackend,
  type PageRuns,
} from "../mm/bus_dma.ts";
import { DmaDebug, type DmaViolation } from "../mm/dma_debug.ts";
import { IommuDriver, type IommuSummary } from "../mm/iommu.ts";
import { IOMMU_ADDRESS_BITS, IOMMU_LEVELS } from "../machine/mod.ts";
import { PageCache, PageDaemon } from "../mm/pdaemon.ts";
import {
  VM_NEXTFIT,
  VM_NOSLEEP,
  VMC_IDENTIFIER,
  Vmem,
  VMEM_ALLOC,
  VMEM_FREE,
  VmemGroup,
} from "../mm/vmem.ts";
import { type Arena, arenaImported, type VmemFlavor } from "../mm/arena.ts";
import type { PglistTrace } from "./trace.ts";
import {
  builtinDrivers,
  type DeviceDriver,
  type DriverBug,
  type DriverKernel,
  type DriverRegistry,
} from "../devices/mod.ts";

/** Bytes per page. */
export const PAGE_SIZE = 4096;
/** Start of the kernel's virtual window (the heap). */
export const KVA_BASE: number = 2 ** 47;
/** Where the loader puts the kernel image. */
export const KERNEL_IMAGE_BASE: number = 2 ** 20;
/** Size of the kernel image. */
export const KERNEL_IMAGE_SIZE: number = 2 ** 20;
/** Largest process ID (the identifier arena holds 1 to PID_MAX). */
export const PID_MAX = 99999;
/** uvmexp.reserve_pagedaemon, as NetBSD sets it. */
export const RESERVE_PAGEDAEMON = 1;
/** uvmexp.reserve_kernel, as NetBSD sets it. */
export const RESERVE_KERNEL = 5;

/** Names of the free lists the x86 port loads, by id. */
export const FREELIST_NAMES: Record<number, string> = {
  [VM_FREELIST_DEFAULT]: "DEFAULT",
  [VM_FREELIST_FIRST4G]: "FIRST4G",
  [VM_FREELIST_FIRST16]: "FIRST16",
};

/** How to boot. */
export interface KernelOptions {
  /** Receives each boot-log line. */
  log?: (line: string) => void;
  /** Records the heap's and the identifier arena's vmem operations. */
  vmemTrace?: VmemRecorder;
  /** Records uvm_pglistalloc operations and page traffic. */
  pglistTrace?: PglistTrace;
  /** Drivers use permissive DMA tags instead of their devices' (faults must follow). */
  ignoreTags?: boolean;
  /** Whose vmem builds the heap arenas (default illumos; the pid arena is illumos's always). */
  vmem?: VmemFlavor;
  /**
   * Allocation policy of the heap's allocations (the words of the trace
   * format): instant-fit for illumos arenas, best-fit for FreeBSD's, when
   * absent.
   */
  policy?: KmemPolicy;
  /** The drivers autoconfiguration matches devices with (default: the built-in ones). */
  drivers?: DriverRegistry;
  /** bus_dma tracks every map and reports misuse (CONFIG_DMA_API_DEBUG). */
  dmaDebug?: boolean;
  /** Deliberate driver bugs to turn on (a test of DMA debugging). */
  driverBugs?: readonly DriverBug[];
  /** Pages of the bounce pool bus_dma takes when a tag first needs it (default 64; 0 for none). */
  bouncePages?: number;
  /** The order uvm_pglistalloc searches segments in: `bsearch` (default) or x86's `bigfirst`. */
  physseg?: PhysSegStrategy;
  /** Use the machine's IOMMU: every device in its scope gets a domain (ENODEV without one). */
  iommu?: boolean;
}

/** Free pages of one free list. */
export interface FreeListSummary {
  /** Free-list id. */
  id: number;
  /** Its x86 name. */
  name: string;
  /** Free pages on it. */
  free: number;
}

/** One arena's sizes. */
export interface ArenaSummary {
  /** Arena name. */
  name: string;
  /** Bytes (or identifiers) allocated. */
  inuse: number;
  /** Bytes free in its spans. */
  free: number;
  /** Bytes imported from its source. */
  imported: number;
}

/** What the kernel reports after a run. */
export interface KernelSummary {
  /** The machine. */
  machine: { preset: string; ramBytes: number; pages: number; hostBytesTouched: number };
  /** Free pages per free list, and the total. */
  freelists: FreeListSummary[];
  /** Free pages in all. */
  freePages: number;
  /** The kernel's arenas. */
  arenas: ArenaSummary[];
  /** The page daemon and its cache. */
  pagedaemon: {
    runs: number;
    kicks: number;
    reclaimed: number;
    waits: number;
    wakeups: number;
    cached: number;
    freemin: number;
    freetarg: number;
  };
  /** The heap. */
  heap: {
    allocs: number;
    frees: number;
    inuse: number;
    arenaInuse: number;
    pages: number;
    pageShortages: number;
  };
  /** Each attached driver's counters. */
  devices: DeviceSummary[];
  /** bus_dma's counters and its bounce pool. */
  busDma: BusDmaStats & { pool: BouncePoolStats };
  /** The IOMMU: what it mapped, invalidated and faulted, and each domain (`enabled` false: unused). */
  iommu: IommuSummary;
  /** DMA-API debugging: whether it is on, the violations it found and the first of them. */
  dmaDebug: DmaDebugSummary;
  /** What has not come back (after {@link Kernel.shutdown}: what never will). */
  leaks: KernelLeaks;
}

/** What has not come back to the kernel. */
export interface KernelLeaks {
  /** Pages not back on the free lists. */
  pages: number;
  /** Bytes still allocated from the heap. */
  heapBytes: number;
  /** Bytes of kernel virtual space still allocated. */
  kvaBytes: number;
  /** Process IDs still allocated. */
  ids: number;
  /** Page lists not freed. */
  pageLists: number;
  /** Interrupt handlers still established (a driver never detached). */
  handlers: number;
  /** bus_dma maps not destroyed. */
  dmaMaps: number;
  /** DMA memory not freed. */
  dmaMemory: number;
  /** bus_dma tags (and their bounce reservations) not destroyed. */
  dmaTags: number;
  /** Bytes of I/O virtual space still held in the IOMMU's domains (with the IOMMU only). */
  iovaBytes?: number;
  /** I/O page-table pages still in use (with the IOMMU only: at shutdown, of domains that still map pages). */
  ioTablePages?: number;
}

/** What DMA-API debugging found. */
export interface DmaDebugSummary {
  /** True when `dmaDebug` was on. */
  enabled: boolean;
  /** Violations found. */
  violations: number;
  /** The first of them. */
  list: DmaViolation[];
}

/** One device's DMA numbers. */
export interface DeviceSummary {
  /** Instance name. */
  name: string;
  /** Device type. */
  type: string;
  /** Transfers the device completed. */
  transfers: number;
  /** Bytes they moved. */
  bytes: number;
  /** Bytes that went through bounce pages or buffers. */
  bouncedBytes: number;
  /** DMA faults the device reported. */
  faults: number;
  /** Transfers whose data the driver found wrong. */
  mismatches: number;
  /** Other device or driver failures. */
  errors: number;
  /** Transfers programmed outside the device's own limits (with tags ignored). */
  breaches: number;
  /** Of those, the ones the device caught with a fault. */
  caught: number;
  /** Faults on transfers within the device's limits. */
  unexpectedFaults: number;
}

/**
 * The kernel in TypeScript; drivers see it as a {@link DriverKernel}.
 * Constructing one boots it on a machine (whose devices must already be
 * attached); {@link Kernel.shutdown} takes it down and counts what leaked.
 *
 * @example Boot, allocate from the heap, shut down
 * ```ts
 * import { createMachine } from "../machine/mod.ts";
 * import { Kernel } from "./kernel.ts";
 *
 * const kernel = new Kernel(createMachine({ preset: "isa" }), { log: console.log });
 * const va = kernel.kmem.alloc(4000); // kernel virtual, backed by pages of RAM
 * kernel.pmap.write(va, new Uint8Array([1, 2, 3]));
 * kernel.kmem.free(va, 4000);
 * kernel.check(); // every invariant of every layer
 * console.log(kernel.shutdown().pages); // 0
 * ```
 */
export class Kernel implements DriverKernel {
  /** The machine it runs on. */
  readonly machine: Machine;
  /** The physical page allocator. */
  readonly uvm: Uvm;
  /** The kernel page table. */
  readonly pmap: Pmap;
  /** The page daemon (and its cache). */
  readonly pagedaemon: PageDaemon;
  /** The kernel heap. */
  readonly kmem: Kmem;
  /** Process IDs. */
  readonly pids: Vmem;
  /**
   * The group of every illumos arena this kernel makes: its quantum-cache
   * reaps and sleeping requests are its own, whatever other kernels in the
   * process do. Arenas made for this kernel later (I/O address spaces, say)
   * join it too.
   */
  readonly vmemGroup: VmemGroup = new VmemGroup();
  /** bus_dma: tags, DMA memory, maps and bounce pools for the drivers. */
  readonly busDma: BusDma;
  /**
   * Free pages once memory management is up, before the drivers attach
   * (what a clean shutdown, which detaches them, must see again).
   */
  readonly bootFree: number;
  /** True when drivers were told to use permissive DMA tags. */
  readonly ignoreTags: boolean;
  /** Deliberate driver bugs that are on. */
  readonly driverBugs: ReadonlySet<DriverBug>;
  /** DMA-API debugging, or null when it is off. */
  readonly dmaDebug: DmaDebug | null;
  /** The IOMMU's driver, or null when the kernel does not use an IOMMU. */
  readonly iommu: IommuDriver | null;
  /** Devices whose driver failed to attach, with the reason. */
  readonly attachErrors: string[] = [];
  readonly #drivers: DeviceDriver[] = [];
  readonly #log: (line: string) => void;
  readonly #vmemTrace?: VmemRecorder;
  /** Records the pid arena's operations (not with FreeBSD heap arenas: a trace is of one kind). */
  readonly #pidTrace?: VmemRecorder;
  readonly #pglistTrace?: PglistTrace;
  readonly #lists = new Set<PageList>();
  #down = false;
  #driverLeaks: string[] = [];

  /** Brings up the kernel on `machine` (see the module text for the order). */
  constructor(machine: Machine, options?: KernelOptions) {
    if (options === undefined) options = {};
    if (options.iommu !== undefined && typeof options.iommu !== "boolean") {
      throw new KernelError("EINVAL", `iommu must be a boolean, got ${describe(options.iommu)}`);
    }
    const log = this.#log = options.log ?? (() => {});
    this.#vmemTrace = options.vmemTrace;
    const flavor = options.vmem ?? "illumos";
    if (flavor === "freebsd") {
      options.vmemTrace?.comment?.(
        "heap arenas of FreeBSD's vmem: replay with mm/replay.ts vmem-freebsd (pid arena not recorded)",
      );
    } else {
      this.#pidTrace = options.vmemTrace;
    }
    this.#pglistTrace = options.pglistTrace;
    this.ignoreTags = options.ignoreTags ?? false;
    this.driverBugs = new Set(options.driverBugs ?? []);
    this.machine = machine;

    log(`firmware memory map (${machine.preset}):`);
    for (const line of machine.memmap.format()) log(`  ${line}`);
    const ram = machine.memmap.ofType("ram").map((r) => ({ base: r.base, size: r.size }));
    const ramBytes = ram.reduce((a, r) => a + r.size, 0);
    log(
      `RAM: ${mib(ramBytes)} in ${ram.length} regions, ending at 0x${
        machine.memmap.ramEnd().toString(16)
      }`,
    );

    const uvm = this.uvm = new Uvm({
      pageSize: PAGE_SIZE,
      reservePagedaemon: RESERVE_PAGEDAEMON,
      reserveKernel: RESERVE_KERNEL,
      physseg: options.physseg,
    });
    this.#pglistTrace?.config(PAGE_SIZE, RESERVE_PAGEDAEMON, RESERVE_KERNEL);
    const image = { base: KERNEL_IMAGE_BASE, size: KERNEL_IMAGE_SIZE };
    const avail = ram.flatMap((r) => subtract(r, image));
    loadRam(uvm, ram, avail);
    let pages = 0;
    for (let i = 0; i < uvm.segmentCount; i++) {
      const s = uvm.segment(i);
      pages += s.end - s.start;
      this.#pglistTrace?.physload(s.start, s.end, s.availStart, s.availEnd, s.freeList);
      log(
        `physload: segment ${i} frames [0x${s.start.toString(16)}, 0x${s.end.toString(16)}) ` +
          `free [0x${s.availStart.toString(16)}, 0x${s.availEnd.toString(16)}) ` +
          `freelist ${FREELIST_NAMES[s.freeList] ?? s.freeList}`,
      );
    }
    uvm.tracer = this.#pglistTrace ?? null;
    if (uvm.strategy === "bigfirst") {
      log("physseg: BIGFIRST: uvm_pglistalloc searches each free list's smallest segment first");
    }
    log(
      `page array: ${pages} pages; kernel image at 0x${image.base.toString(16)} (${
        mib(image.size)
      })`,
    );
    for (const fl of this.#freelists()) {
      if (fl.free > 0) log(`free list ${fl.name}: ${fl.free} pages`);
    }

    // uvmpd_tune: keep 0.5% of memory free, between 128 KiB and 1 MiB per
    // CPU (the machine has one); the target is a third above that.
    const freemin = Math.max(
      Math.min(
        Math.max(Math.floor(pages / 200), (128 * 1024) / PAGE_SIZE),
        (1024 * 1024) / PAGE_SIZE,
      ),
      RESERVE_KERNEL + 1,
    );
    const freetarg = Math.min(
      Math.max(Math.floor(freemin * 4 / 3), freemin + 1),
      Math.floor(pages / 2),
    );
    // The page cache names its pages by page id.
    const frames = uvm.cacheFrames(OWNER_CACHE);
    const pd = this.pagedaemon = new PageDaemon(frames, new PageCache(frames), freemin, freetarg);
    uvm.hooks = {
      reclaimable: () => pd.reclaimable(),
      wait: (signal?: AbortSignal) => pd.wait(signal),
      kick: () => {
        if (pd.low && pd.reclaimable()) pd.kick();
      },
    };
    log(`pagedaemon: freemin ${freemin} pages, freetarg ${freetarg} pages`);

    const kvaSize = Math.max(2 ** 28, 2 * roundUp(ramBytes, 2 ** 20));
    this.pmap = new Pmap(machine.ram, KVA_BASE, kvaSize, PAGE_SIZE);
    log(`pmap: kernel window 0x${KVA_BASE.toString(16)} + ${mib(kvaSize)}`);
    this.kmem = new Kmem(uvm, this.pmap, {
      onShortage: (pages) => pd.kick(pages),
      recorder: this.#vmemTrace ?? null,
      flavor,
      policy: options.policy,
      group: this.vmemGroup,
    });
    pd.onFreed(() => this.kmem.wakeup());
    for (const a of [this.kmem.heap, this.kmem.kmemVa, this.kmem.kmem]) {
      log(
        `arena ${a.name}: ${flavor === "freebsd" ? "FreeBSD vmem, " : ""}quantum ${a.quantum}` +
          (a.source ? `, imports from ${a.source.name}` : "") +
          (a.qcacheMax > 0 ? `, quantum caches up to ${a.qcacheMax}` : ""),
      );
    }
    this.pids = Vmem.create("pid", 1, PID_MAX, 1, {
      flags: VMC_IDENTIFIER,
      group: this.vmemGroup,
    });
    this.#pidTrace?.create(this.pids, 1, PID_MAX);
    log(
      `arena pid: identifiers 1 to ${PID_MAX}, next-fit` +
        (flavor === "freebsd" ? " (illumos vmem: FreeBSD's has no next-fit)" : ""),
    );
    this.bootFree = uvm.free;
    this.iommu = options.iommu === true ? this.#startIommu() : null;
    if (this.iommu === null && machine.iommu !== null) {
      log("iommu: present but not used: DMA is not translated");
    }
    const backend = this.#dmaBackend();
    this.busDma = new BusDma(backend, { bouncePages: options.bouncePages, iommu: this.iommu });
    this.dmaDebug = options.dmaDebug ? new DmaDebug(backend) : null;
    this.busDma.debug = this.dmaDebug;
    if (this.dmaDebug !== null) {
      for (const d of machine.devices) this.dmaDebug.watch(d.port);
      log("bus_dma: DMA-API debugging on: every map and device transfer is tracked");
    }
    this.#attachDevices(options.drivers ?? builtinDrivers());
    log(`kernel ready: ${uvm.free} pages free (${mib(uvm.free * PAGE_SIZE)})`);
  }

  /**
   * Called by workloads at their peak (most memory in use), before they
   * free: `--svg` draws the machine there.
   */
  onPeak: ((k: Kernel, workload: string) => void) | null = null;

  /** Tells the {@link onPeak} listener that `workload` is at its peak. */
  peak(workload: string): void {
    this.onPeak?.(this, workload);
  }

  /** The attached drivers, in the order of the machine's device table. */
  get drivers(): readonly DeviceDriver[] {
    return this.#drivers.slice();
  }

  /** The devices stage: the registry's driver for each device the machine lists. */
  #attachDevices(registry: DriverRegistry): void {
    const log = this.#log;
    for (const info of this.machine.devices) {
      const entry = registry.match(info.type);
      const where = `${info.name} (${info.type}) at 0x${info.base.toString(16)} irq ${info.irq}`;
      if (entry === undefined) {
        log(`device ${where}: no driver`);
        continue;
      }
      try {
        const d = entry.attach(this, info);
        this.#drivers.push(d);
        log(`device ${where}: ${entry.name} driver${d.ignoreTags ? ", DMA tag ignored" : ""}`);
        log(`  ${info.name} dma: ${d.tag.describe()}`);
      } catch (e) {
        const why = `${info.name}: attach failed: ${(e as Error).message}`;
        this.attachErrors.push(why);
        log(`device ${where}: ${why}`);
      }
    }
    const pool = this.busDma.bouncePool;
    if (pool.reserved > 0) {
      log(
        `bus_dma: bounce pool of ${pool.pages} pages at 0x${pool.base.toString(16)}, ` +
          `${pool.reserved} reserved by ${pool.tags.length} tag${
            pool.tags.length === 1 ? "" : "s"
          }`,
      );
    } else log(`bus_dma: no tag reserves bounce pages; the ${pool.pages}-page pool is not taken`);
  }

  /** The MMIO bus (for drivers' register access). */
  get bus(): Bus {
    return this.machine.bus;
  }

  /** The interrupt controller (for drivers' handlers). */
  get irq(): InterruptController {
    return this.machine.irq;
  }

  /** The machine's clock (for drivers' timeouts). */
  get clock(): Clock {
    return this.machine.clock;
  }

  /** Takes pending interrupts now. */
  interruptWindow(): void {
    this.machine.irq.deliver();
  }

  /** Copies kernel virtual memory at `va` into `dst` (what drivers read through). */
  read(va: number, dst: Uint8Array): void {
    this.pmap.read(va, dst);
    this.dmaDebug?.cpu("read", va, dst.length);
  }

  /** Copies `src` to kernel virtual memory at `va` (what drivers write through). */
  write(va: number, src: Uint8Array): void {
    this.pmap.write(va, src);
    this.dmaDebug?.cpu("write", va, src.length);
  }

  /** Sets `len` bytes of kernel virtual memory at `va` to `byte`. */
  fill(va: number, len: number, byte: number): void {
    this.pmap.fill(va, len, byte);
    this.dmaDebug?.cpu("write", va, len);
  }

  /**
   * Takes the machine's IOMMU over: a domain for each device in its scope,
   * tables from the page allocator, translation on. ENODEV without one.
   */
  #startIommu(): IommuDriver {
    const hw = this.machine.iommu, m = this.machine, uvm = this.uvm, log = this.#log;
    if (hw === null) throw new KernelError("ENODEV", "iommu: the machine has no IOMMU");
    const driver = new IommuDriver(
      {
        ram: m.ram,
        regs: {
          read32: (off) => m.bus.read32(hw.base + off),
          write32: (off, v) => m.bus.write32(hw.base + off, v),
        },
        allocTable: () => {
          const pfn = uvm.pageAlloc();
          if (pfn >= 0) uvm.setOwner(pfn, OWNER_DMA);
          return pfn < 0 ? -1 : pfn * PAGE_SIZE;
        },
        group: this.vmemGroup,
        freeTable: (pa) => {
          uvm.pageFree(pa / PAGE_SIZE);
          this.pagedaemon.notifyFreed();
        },
      },
      hw.scope.map((s) => ({ ...s, limits: m.device(s.name)!.dma })),
    );
    log(
      `iommu: at 0x${hw.base.toString(16)}, ${IOMMU_LEVELS}-level I/O page tables, ` +
        `${IOMMU_ADDRESS_BITS}-bit I/O virtual addresses, IOTLB of ${hw.iotlbEntries} entries`,
    );
    for (const d of driver.domains) {
      log(
        `iommu: domain ${d.id} for ${d.device}: I/O virtual [0x${d.base.toString(16)}, 0x${
          (d.base + d.size).toString(16)
        })` + (d.arena.qcacheMax > 0 ? `, quantum caches up to ${d.arena.qcacheMax}` : ""),
      );
    }
    log(`iommu: translation on for ${driver.domains.length} devices`);
    return driver;
  }

  /** What bus_dma needs, from this kernel's page allocator, pmap and heap. */
  #dmaBackend(): DmaBackend {
    const lists = new WeakMap<PageRuns, PageList>();
    return {
      pageSize: PAGE_SIZE,
      ramEnd: this.machine.memmap.ramEnd(),
      phys: this.machine.ram,
      kva: this.pmap,
      copy: (dst, src, len) => this.machine.ram.copy(dst, src, len),
      allocPages: (size, low, high, alignment, boundary, nsegs) => {
        const list = this.allocPages(size, low, high, alignment, boundary, nsegs);
        const runs = { runs: list.runs() };
        for (const [pfn, n] of runs.runs) {
          for (let i = 0; i < n; i++) this.uvm.setOwner(pfn + i, OWNER_DMA);
        }
        lists.set(runs, list);
        return runs;
      },
      freePages: (runs) => {
        const list = lists.get(runs);
        if (list === undefined) {
          throw new KernelError("BADFREE", "pages were not allocated by bus_dma");
        }
        this.freePages(list);
        lists.delete(runs);
      },
      mapPages: (runs) => this.kmem.mapPhysical(runs.runs),
      unmapPages: (va, size) => this.kmem.unmapPhysical(va, size),
    };
  }

  /** Writes a line to the boot log. */
  log(line: string): void {
    this.#log(line);
  }

  /**
   * uvm_pglistalloc without waiting: a page list, or a thrown ENOMEM / EINVAL
   * {@link KernelError}.
   */
  allocPages(
    size: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    nsegs: number,
  ): PageList {
    const list = pglistAlloc(this.uvm, size, low, high, alignment, boundary, nsegs, false);
    this.#lists.add(list);
    return list;
  }

  /**
   * uvm_pglistalloc with waitok: waits for the page daemon (the simple
   * path) or runs the aggressive contiguous search while pages are
   * reclaimable. Rejects with ENOMEM when nothing more can be reclaimed.
   */
  async allocPagesWait(
    size: number,
    low: number,
    high: number,
    alignment: number,
    boundary: number,
    nsegs: number,
    signal?: AbortSignal,
  ): Promise<PageList> {
    const list = await pglistAllocWait(
      this.uvm,
      size,
      low,
      high,
      alignment,
      boundary,
      nsegs,
      signal,
    );
    this.#lists.add(list);
    return list;
  }

  /** uvm_pglistfree of a list from {@link allocPages} or {@link allocPagesWait}. */
  freePages(list: PageList): void {
    if (!this.#lists.has(list)) {
      throw new KernelError(
        "BADFREE",
        "page list was not allocated by this kernel or is already free",
      );
    }
    pglistFree(this.uvm, list);
    this.#lists.delete(list);
    this.pagedaemon.notifyFreed();
  }

  /** Allocates a process ID (next-fit, as pid allocation is), or 0 when none is left. */
  allocPid(): number {
    const pid = this.pids.alloc(1, VM_NEXTFIT | VM_NOSLEEP);
    this.#pidTrace?.alloc(this.pids, 1, ["nosleep", "nextfit"], pid);
    return pid;
  }

  /** Frees a process ID. */
  freePid(pid: number): void {
    this.pids.free(pid, 1);
    this.#pidTrace?.free(this.pids, pid, 1);
  }

  /** Records the free runs and hints in the pglist trace (a `state` line). */
  traceState(): void {
    const t = this.#pglistTrace;
    if (t === undefined) return;
    const hints: number[] = [];
    for (let i = 0; i < this.uvm.segmentCount; i++) hints.push(this.uvm.segment(i).startHint);
    t.state(this.uvm.freeRuns(), hints);
  }

  /**
   * Checks every subsystem's invariants; throws on the first broken one. The
   * machine and the page allocator take what nothing wrote on trust (a check
   * costs what the guest touched); `exhaustive` reads all of it.
   */
  check(exhaustive?: boolean): void {
    if (exhaustive === undefined) exhaustive = false;
    this.machine.check(exhaustive);
    this.uvm.check(exhaustive);
    this.pmap.check();
    if (this.#down) return;
    this.kmem.check();
    this.pids.check();
    this.busDma.check();
    this.iommu?.check();
    for (const d of this.#drivers) d.check();
  }

  /** Returns cached memory (quantum caches, the page cache) to the free lists. */
  reap(): void {
    this.kmem.reap();
    this.pagedaemon.drain();
  }

  /**
   * Shuts the kernel down: detaches the drivers (their maps, DMA memory
   * and tags come back), drops the page cache, gives back the bounce pool,
   * destroys the process-ID arena and the heap arenas (purging their
   * quantum caches) and reports what did not come back: pages, heap and
   * kernel virtual bytes, identifiers, page lists, and what a driver that
   * was never detached (or detached badly) still holds: interrupt handlers,
   * maps, DMA memory and tags; then gives the IOMMU back (I/O virtual
   * space still held and page-table pages still in use are leaks). The
   * kernel is unusable afterwards.
   */
  shutdown(): KernelLeaks {
    const leaks: string[] = [];
    for (const d of this.#drivers) {
      try {
        d.detach();
      } catch (e) {
        leaks.push(`${d.name}: detach failed: ${(e as Error).message}`);
      }
    }
    this.pagedaemon.drain();
    const dma = this.busDma.shutdown();
    const handlers = this.machine.irq.established();
    for (const h of handlers) {
      leaks.push(`interrupt line ${h.line} still has a handler (${h.owner || "no owner"})`);
    }
    if (dma.maps.length > 0) leaks.push(`bus_dma maps not destroyed: ${dma.maps.join(", ")}`);
    if (dma.memory > 0) leaks.push(`${dma.memory} DMA memory allocations not freed`);
    if (dma.tags.length > 0) leaks.push(`bus_dma tags not destroyed: ${dma.tags.join(", ")}`);
    const io = this.iommu?.shutdown() ?? null;
    if (io !== null && io.iovaBytes > 0) {
      leaks.push(`iommu: ${io.iovaBytes} bytes of I/O virtual space not freed`);
    }
    if (io !== null && io.tablePages > 0) {
      leaks.push(`iommu: ${io.tablePages} I/O page-table pages still in use`);
    }
    this.#driverLeaks = leaks;
    const ids = this.pids.destroy();
    const heap = this.kmem.shutdown();
    this.#down = true;
    return {
      pages: this.bootFree - this.uvm.free,
      heapBytes: heap.kmem,
      kvaBytes: heap.heap,
      ids,
      pageLists: this.#lists.size,
      handlers: handlers.length,
      dmaMaps: dma.maps.length,
      dmaMemory: dma.memory,
      dmaTags: dma.tags.length,
      ...(io === null ? {} : { iovaBytes: io.iovaBytes, ioTablePages: io.tablePages }),
    };
  }

  /** What DMA-API debugging found so far (violations at shutdown included once it ran). */
  dmaDebugSummary(): DmaDebugSummary {
    const d = this.dmaDebug;
    return d === null
      ? { enabled: false, violations: 0, list: [] }
      : { enabled: true, ...d.summary() };
  }

  /**
   * The DMA problems of a run, in words: faults no breach explains (every
   * fault a device's port recorded is one, unless its driver ignored its tag
   * and the fault caught a breach), breaches that went unnoticed, data
   * mismatches, device and driver errors, DMA-API violations, and (after
   * {@link shutdown}) what drivers left behind. Empty when all is well.
   */
  dmaProblems(): string[] {
    const out: string[] = [];
    const byName = new Map(this.#drivers.map((d) => [d.name, d]));
    for (const dev of this.machine.devices) {
      const port = dev.port, d = byName.get(dev.name);
      const f = port.lastFault;
      const last = f === null
        ? ""
        : ` (last: ${f.kind} ${f.op} at 0x${f.addr.toString(16)}: ${f.reason})`;
      if (d === undefined) {
        if (port.faults > 0) out.push(`${dev.name}: ${port.faults} DMA faults${last}`);
        continue;
      }
      const s = d.stats();
      if (s.unexpectedFaults > 0) {
        out.push(`${dev.name}: ${s.unexpectedFaults} DMA faults within the device's limits${last}`);
      }
      if (port.faults !== s.faults) {
        out.push(
          `${dev.name}: the port recorded ${port.faults} DMA faults, the driver saw ${s.faults}`,
        );
      }
      if (s.breaches > s.caught) {
        out.push(
          `${dev.name}: ${
            s.breaches - s.caught
          } transfers beyond the device's limits went unnoticed`,
        );
      }
      if (s.mismatches > 0) out.push(`${dev.name}: ${s.mismatches} transfers with wrong data`);
      if (s.errors > 0) out.push(`${dev.name}: ${s.errors} device or driver errors`);
    }
    const dbg = this.dmaDebugSummary();
    if (dbg.violations > 0) {
      out.push(`dma-debug: ${dbg.violations} violations (first: ${dbg.list[0]!.message})`);
    }
    for (const l of this.#driverLeaks) out.push(`leak: ${l}`);
    return out;
  }

  /** True once {@link shutdown} ran. */
  get down(): boolean {
    return this.#down;
  }

  /** The report of the kernel's state. */
  summary(): KernelSummary {
    const k = this.kmem.stats;
    const pd = this.pagedaemon.stats;
    const arena = (a: Arena): ArenaSummary => ({
      name: a.name,
      inuse: a.size(VMEM_ALLOC),
      free: a.size(VMEM_FREE),
      imported: arenaImported(a),
    });
    const ramBytes = this.machine.memmap.ramSize();
    let pages = 0;
    for (let i = 0; i < this.uvm.segmentCount; i++) {
      const s = this.uvm.segment(i);
      pages += s.end - s.start;
    }
    return {
      machine: {
        preset: this.machine.preset,
        ramBytes,
        pages,
        hostBytesTouched: this.machine.ram.touchedBytes(),
      },
      freelists: this.#freelists(),
      freePages: this.uvm.free,
      arenas: [this.kmem.heap, this.kmem.kmemVa, this.kmem.kmem, this.pids].map(arena),
      pagedaemon: {
        ...pd,
        cached: this.pagedaemon.cache.size,
        freemin: this.pagedaemon.freemin,
        freetarg: this.pagedaemon.freetarg,
      },
      heap: k,
      devices: this.#drivers.map((d) => ({ name: d.name, type: d.type, ...d.stats() })),
      busDma: { ...this.busDma.stats, pool: this.busDma.bouncePool },
      iommu: this.iommu?.summary() ?? noIommu(),
      dmaDebug: this.dmaDebugSummary(),
      leaks: {
        pages: this.bootFree - this.uvm.free - this.pagedaemon.cache.size,
        heapBytes: k.inuse,
        kvaBytes: this.kmem.vaInuse,
        ids: this.pids.size(VMEM_ALLOC),
        pageLists: this.#lists.size,
        handlers: this.machine.irq.established().length,
        dmaMaps: this.busDma.liveMaps.length,
        dmaMemory: this.busDma.liveMemory,
        dmaTags: this.busDma.liveTags.length,
        ...(this.iommu === null ? {} : {
          iovaBytes: this.iommu.domains.reduce((n, d) => n + d.inUse, 0),
          ioTablePages: this.iommu.domains.reduce((n, d) => n + d.tablePages, 0),
        }),
      },
    };
  }

  #freelists(): FreeListSummary[] {
    const out: FreeListSummary[] = [];
    for (let id = 0; id < VM_NFREELIST; id++) {
      const name = FREELIST_NAMES[id];
      if (name !== undefined) out.push({ id, name, free: this.uvm.freeCount(id) });
    }
    return out;
  }
}

/** What the summary says of the IOMMU when the kernel does not use one. */
function noIommu(): IommuSummary {
  return {
    enabled: false,
    maps: 0,
    unmaps: 0,
    invalidations: 0,
    faults: 0,
    mappedPages: 0,
    tablePages: 0,
    iotlb: { hits: 0, misses: 0 },
    domains: [],
  };
}

/**
 * The summary lines of the devices, bus_dma, its bounce pool, the IOMMU and
 * DMA-API debugging (what the front end prints between the heap and the
 * leaks).
 */
export function formatDmaSummary(s: KernelSummary): string[] {
  const out: string[] = [];
  for (const d of s.devices) {
    const caught = d.breaches > 0 ? ` (${d.caught} of ${d.breaches} breaches caught)` : "";
    out.push(
      `  device ${d.name.padEnd(6)} transfers ${d.transfers}, bytes ${d.bytes}, ` +
        `bounced bytes ${d.bouncedBytes}, faults ${d.faults}${caught}` +
        (d.mismatches + d.errors > 0 ? `, mismatches ${d.mismatches}, errors ${d.errors}` : ""),
    );
  }
  if (s.devices.length > 0) {
    const b = s.busDma, p = b.pool;
    out.push(
      `  bus_dma      ${b.loads} loads, ${b.segments} segments, ${b.bouncedBytes} bytes copied ` +
        `through bounce pages, ${b.efbig} EFBIG, ${b.bounceShortages} bounce shortages, ` +
        `${b.bounceWaits} bounce waits`,
    );
    out.push(
      `  bounce pool  ${p.pages} pages at 0x${p.base.toString(16)}, ${p.reserved} reserved` +
        (p.tags.length > 0 ? ` (${p.tags.map((t) => `${t.tag} ${t.pages}`).join(", ")})` : ""),
    );
  }
  const io = s.iommu;
  if (io.enabled) {
    out.push(
      `  iommu        ${io.maps} maps, ${io.unmaps} unmaps, ${io.invalidations} invalidations, ` +
        `${io.faults} faults; ${io.mappedPages} I/O pages mapped, ${io.tablePages} table pages; ` +
        `IOTLB ${io.iotlb.hits} hits, ${io.iotlb.misses} misses`,
    );
    for (const d of io.domains) {
      out.push(
        `  iommu domain ${d.id} ${d.device.padEnd(6)} I/O virtual [0x${d.base.toString(16)}, 0x${
          (d.base + d.size).toString(16)
        }): ${d.maps} maps, ${d.inUse} bytes in use, ${d.mappedPages} pages mapped, ` +
          `${d.tablePages} table pages, arena fragmentation ${d.arena.fragmentation.toFixed(2)}`,
      );
    }
  }
  if (s.dmaDebug.enabled) {
    out.push(`  dma-debug    ${s.dmaDebug.violations} violations`);
    for (const v of s.dmaDebug.list.slice(0, 4)) out.push(`    ${v.kind}: ${v.message}`);
  }
  return out;
}

function mib(bytes: number): string {
  return bytes >= 2 ** 30 && bytes % 2 ** 30 === 0
    ? `${bytes / 2 ** 30} GiB`
    : bytes >= 2 ** 20
    ? `${+(bytes / 2 ** 20).toFixed(2)} MiB`
    : `${bytes / 1024} KiB`;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** `r` minus `hole`, as zero, one or two regions. */
function subtract(
  r: { base: number; size: number },
  hole: { base: number; size: number },
): { base: number; size: number }[] {
  const end = r.base + r.size;
  const hend = hole.base + hole.size;
  if (hend <= r.base || hole.base >= end) return [r];
  const out = [];
  if (hole.base > r.base) out.push({ base: r.base, size: hole.base - r.base });
  if (hend < end) out.push({ base: hend, size: end - hend });
  return out;
}
