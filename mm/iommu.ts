/**
 * The kernel's driver of the IOMMU: one domain per device behind it, each
 * an I/O virtual address space handed out by a vmem arena and described to
 * the hardware by I/O page tables the driver keeps in RAM.
 *
 * Theory. At boot the driver reads the IOMMU's device scope and gives each
 * device a domain of its own (numbered from 1), as Linux's DMA API does
 * with IOMMU_DOMAIN_DMA: a vmem arena over the I/O virtual addresses the
 * device can drive, `[max(page, its lowest address), min(its highest + 1,
 * 2^48))` in pages, so a 24-, 30- or 32-bit device gets an arena below its
 * limit and never an address it cannot drive; quantum caches serve the
 * common sizes (up to {@link IOVA_QCACHE_MAX}), as Linux's IOVA range
 * caches do, in an arena large enough to spare their slabs
 * ({@link IOVA_QCACHE_MIN_ARENA}). Address 0 is never handed out (vmem's failure value). It
 * makes each domain's root table, installs each device's context (its
 * domain and root) through the registers and turns translation on.
 *
 * A domain's page tables are the IOMMU's format (`machine/iommu.ts`):
 * four levels of 512 eight-byte entries. Tables below the root are made as
 * mappings need them and kept until the domain is destroyed (an emptied
 * table costs a page, and keeping it spares the next mapping the work); the
 * driver remembers each leaf table by the range it covers, so that mapping
 * and unmapping touch RAM only for the entries themselves. Unmapping clears
 * the entries and then invalidates the range in the IOTLB before the I/O
 * virtual addresses can be handed out again (strict invalidation; the
 * hardware would otherwise keep translating them).
 *
 * Refusals (nothing changed): `mapPages` of a range the domain's arena does
 * not cover, of a page already mapped or with a bad frame or permission
 * (EINVAL, EBUSY); `unmap` of a page that is not mapped (BADFREE); `attach`
 * of a domain with no root table (destroyed) or of a source outside the
 * IOMMU's scope (EINVAL); a domain the IOMMU refuses (ENXIO, naming its
 * STATUS). Any argument of the wrong type is an EINVAL naming it.
 *
 * Data structures: per domain its arena, the physical addresses of its
 * tables (an array) and of its leaf tables by the 2 MiB range each covers
 * (a Map), and counters. Invariants ({@link IommuDriver.check}): each
 * arena is sound; a domain's present leaf entries number its mapped pages;
 * its table count is one root plus the tables it made; the hardware's
 * invalidation count matches the driver's. Cost: mapping or unmapping n
 * pages is O(n) entry stores plus one walk per 2 MiB range not seen
 * before; an unmap adds one invalidation command (five register stores);
 * an I/O virtual address allocation is a quantum-cache pop for the cached
 * sizes, else a vmem allocation. Steady-state mapping allocates nothing.
 *
 * @module
 */

import { TWO32 } from "../machine/bits.ts";
import { checkInteger, describe, KernelError } from "./errors.ts";
import { VM_NOSLEEP, Vmem, VMEM_ALLOC, VmemGroup } from "./vmem.ts";
import { type ArenaFigures, arenaFigures } from "./fragmentation.ts";
import {
  type DmaLimits,
  IOMMU_ADDRESS_BITS,
  IOMMU_CTRL_TE,
  IOMMU_CTX_CLEAR,
  IOMMU_CTX_SET,
  IOMMU_ENTRIES,
  IOMMU_ID,
  IOMMU_INV_DOMAIN,
  IOMMU_INV_GLOBAL,
  IOMMU_INV_PAGES,
  IOMMU_LEVELS,
  IOMMU_PAGE,
  IOMMU_REG_CTRL,
  IOMMU_REG_CTX_CMD,
  IOMMU_REG_CTX_DOMAIN,
  IOMMU_REG_CTX_ROOT_HI,
  IOMMU_REG_CTX_ROOT_LO,
  IOMMU_REG_FAULT_COUNT,
  IOMMU_REG_ID,
  IOMMU_REG_INV_ADDR_HI,
  IOMMU_REG_INV_ADDR_LO,
  IOMMU_REG_INV_CMD,
  IOMMU_REG_INV_COUNT,
  IOMMU_REG_INV_DOMAIN,
  IOMMU_REG_INV_PAGES,
  IOMMU_REG_IOTLB_HITS,
  IOMMU_REG_IOTLB_MISSES,
  IOMMU_REG_SOURCE,
  IOMMU_REG_STATUS,
  IOMMU_ST_OK,
  IOPTE_READ,
  IOPTE_WRITE,
} from "../machine/mod.ts";

/** Largest I/O virtual allocation the domains' quantum caches serve: 16 pages. */
export const IOVA_QCACHE_MAX: number = 16 * IOMMU_PAGE;
/** Smallest arena that has quantum caches (they take their slabs from it): 4 MiB. */
export const IOVA_QCACHE_MIN_ARENA: number = 64 * IOVA_QCACHE_MAX;

const LIMIT = 2 ** IOMMU_ADDRESS_BITS;
/** Bytes one leaf table maps. */
const LEAF_SPAN = IOMMU_PAGE * IOMMU_ENTRIES;
const STATUS_WORDS = ["ok", "source out of scope", "bad root table", "bad domain", "bad command"];

/** What the IOMMU driver needs of the kernel and the machine. */
export interface IommuBackend {
  /** Physical memory, where the page tables live. */
  readonly ram: {
    read32(pa: number): number;
    write32(pa: number, value: number): void;
    fill(pa: number, len: number, byte: number): void;
  };
  /** The IOMMU's registers: 32-bit loads and stores at offsets from its window. */
  readonly regs: { read32(offset: number): number; write32(offset: number, value: number): void };
  /** A page for a page table: its physical address, or -1 when there is none. */
  allocTable(): number;
  /** Gives back a page from {@link allocTable}. */
  freeTable(pa: number): void;
  /**
   * The group the domains' I/O address arenas join (the kernel's own, so
   * that their quantum caches are reaped with its other arenas); a group of
   * their own when absent.
   */
  readonly group?: VmemGroup;
}

/** A device behind the IOMMU, as the driver is told of it. */
export interface IommuDevice {
  /** The device's name. */
  readonly name: string;
  /** Its source number at the IOMMU. */
  readonly source: number;
  /** The addresses it can drive. */
  readonly limits: Pick<DmaLimits, "minAddress" | "maxAddress">;
}

/** One domain's figures. */
export interface IommuDomainSummary {
  /** Domain number. */
  id: number;
  /** The device it serves. */
  device: string;
  /** First I/O virtual address of its arena. */
  base: number;
  /** Bytes of I/O virtual space in its arena. */
  size: number;
  /** Bytes of I/O virtual space held by loads now (quantum-cache slabs not counted). */
  inUse: number;
  /** Mappings made: one per run of pages a load maps (one per load but for scatter lists). */
  maps: number;
  /** Mappings undone. */
  unmaps: number;
  /** Pages mapped now. */
  mappedPages: number;
  /** Page-table pages (the root included). */
  tablePages: number;
  /** The arena's figures (its allocated segments include quantum-cache slabs). */
  arena: ArenaFigures;
}

/** What the IOMMU did, for the kernel's summary. */
export interface IommuSummary {
  /** True when the kernel uses the IOMMU. */
  enabled: boolean;
  /** Mappings made, in all domains (see {@link IommuDomainSummary.maps}). */
  maps: number;
  /** Mappings undone. */
  unmaps: number;
  /** IOTLB invalidation commands issued. */
  invalidations: number;
  /** Translation faults the IOMMU recorded. */
  faults: number;
  /** I/O pages mapped now, in all domains. */
  mappedPages: number;
  /** Page-table pages, in all domains. */
  tablePages: number;
  /** IOTLB hits and misses the hardware counted (modulo 2^32). */
  iotlb: { hits: number; misses: number };
  /** Each domain. */
  domains: IommuDomainSummary[];
}

/** A domain: an I/O virtual address space, its arena and its page tables. */
export class IommuDomain {
  /** Domain number (the IOTLB's tag). */
  readonly id: number;
  /** The device it serves. */
  readonly device: string;
  /** First I/O virtual address of its arena. */
  readonly base: number;
  /** Bytes of its arena. */
  readonly size: number;
  /** The arena of its I/O virtual addresses. */
  readonly arena: Vmem;
  /** Mappings made. */
  maps = 0;
  /** Unmappings. */
  unmaps = 0;
  /** Pages mapped now. */
  mappedPages = 0;
  /** Bytes of I/O virtual space held now (by {@link alloc} and {@link xalloc}). */
  inUse = 0;

  readonly #driver: IommuDriver;
  readonly #ram: IommuBackend["ram"];
  #root: number;
  readonly #tables: number[] = [];
  readonly #leaves = new Map<number, number>();

  /** Use {@link IommuDriver.createDomain}. */
  constructor(
    driver: IommuDriver,
    ram: IommuBackend["ram"],
    id: number,
    device: string,
    base: number,
    size: number,
    root: number,
  ) {
    this.#driver = driver;
    this.#ram = ram;
    this.id = id;
    this.device = device;
    this.base = base;
    this.size = size;
    this.#root = root;
    // A quantum cache takes its slabs from the arena: a small arena has none.
    this.arena = Vmem.create(`iova ${device}`, base, size, IOMMU_PAGE, {
      qcacheMax: size >= IOVA_QCACHE_MIN_ARENA ? IOVA_QCACHE_MAX : 0,
      group: driver.vmemGroup,
    });
  }

  /** Physical address of its root table (0 once destroyed). */
  get root(): number {
    return this.#root;
  }

  /** Page-table pages it holds, the root included. */
  get tablePages(): number {
    return (this.#root === 0 ? 0 : 1) + this.#tables.length;
  }

  /**
   * `size` bytes (a page multiple) of I/O virtual space anywhere in the
   * arena, through its quantum caches for the cached sizes; 0 when there
   * is none. Give it back with {@link free}.
   */
  alloc(size: number): number {
    this.#live();
    const a = this.arena.alloc(size, VM_NOSLEEP);
    if (a !== 0) this.inUse += size;
    return a;
  }

  /**
   * `size` bytes of I/O virtual space aligned to `align`, not crossing a
   * multiple of `nocross` (0: any), inside `[minaddr, maxaddr)` (0: the
   * arena's bounds); 0 when there is none. Give it back with {@link xfree}.
   */
  xalloc(size: number, align: number, nocross: number, minaddr: number, maxaddr: number): number {
    this.#live();
    const a = this.arena.xalloc(size, align, 0, nocross, minaddr, maxaddr, VM_NOSLEEP);
    if (a !== 0) this.inUse += size;
    return a;
  }

  /** Gives back what {@link alloc} returned. */
  free(addr: number, size: number): void {
    this.#live();
    this.arena.free(addr, size);
    this.inUse -= size;
  }

  /** Gives back what {@link xalloc} returned. */
  xfree(addr: number, size: number): void {
    this.#live();
    this.arena.xfree(addr, size);
    this.inUse -= size;
  }

  /**
   * Maps `count` pages from `iova` (page-aligned): page i to the physical
   * page `frames[first + i]`, with permission `perm` ({@link IOPTE_READ},
   * {@link IOPTE_WRITE} or both). Refused, changing no entry, when the
   * range is not all inside the arena (EINVAL), a page is already mapped
   * (EBUSY), a frame or the permission is bad (EINVAL), or a table cannot
   * be made (ENOMEM; tables made before it stay, empty).
   */
  mapPages(
    iova: number,
    frames: ArrayLike<number>,
    count: number,
    perm: number,
    first?: number,
  ): void {
    if (first === undefined) first = 0;
    this.#live();
    checkInteger("count", count, 1, 2 ** 32);
    this.#covered(iova, count * IOMMU_PAGE, "map");
    if (perm !== IOPTE_READ && perm !== IOPTE_WRITE && perm !== (IOPTE_READ | IOPTE_WRITE)) {
      throw new KernelError("EINVAL", `perm must be 1, 2 or 3, got ${describe(perm)}`);
    }
    checkInteger("first", first);
    if (frames === null || typeof frames !== "object" || !(frames.length >= first + count)) {
      throw new KernelError(
        "EINVAL",
        `frames must list ${count} page addresses from ${first}, got ${describe(frames)}`,
      );
    }
    for (let i = 0; i < count; i++) {
      const f = frames[first + i];
      if (
        typeof f !== "number" || !Number.isInteger(f) || f < 0 || f >= 2 ** 52 ||
        f % IOMMU_PAGE !== 0
      ) {
        throw new KernelError(
          "EINVAL",
          `frames[${first + i}] is not a page address: ${describe(f)}`,
        );
      }
    }
    const busy = this.#find(iova, count, true);
    if (busy >= 0) {
      throw new KernelError(
        "EBUSY",
        `I/O virtual page ${hexs(iova + busy * IOMMU_PAGE)} of domain ${this.id} is already mapped`,
      );
    }
    this.#store(iova, count, frames, first, perm);
    this.mappedPages += count;
    this.maps++;
  }

  /**
   * Unmaps the `size` bytes (page multiples) from `iova` and invalidates
   * them in the IOTLB. Refused, changing nothing, when the range is not all
   * inside the arena (EINVAL) or a page of it is not mapped (BADFREE).
   */
  unmap(iova: number, size: number): void {
    this.#live();
    checkInteger("size", size, IOMMU_PAGE, LIMIT);
    if (size % IOMMU_PAGE !== 0) {
      throw new KernelError("EINVAL", `size must be a multiple of the page, got ${describe(size)}`);
    }
    this.#covered(iova, size, "unmap");
    const n = size / IOMMU_PAGE;
    const hole = this.#find(iova, n, false);
    if (hole >= 0) {
      throw new KernelError(
        "BADFREE",
        `unmap of I/O virtual page ${
          hexs(iova + hole * IOMMU_PAGE)
        } of domain ${this.id}, which is not mapped`,
      );
    }
    this.#store(iova, n, null, 0, 0);
    this.mappedPages -= n;
    this.unmaps++;
    this.#driver.invalidatePages(this, iova, n);
  }

  /**
   * The physical address `iova` translates to in the tables (not the
   * IOTLB), or -1 when it is not mapped; with `write`, -1 unless the page
   * is writable too.
   */
  extract(iova: number, write?: boolean): number {
    if (write === undefined) write = false;
    if (typeof iova !== "number" || !Number.isInteger(iova) || iova < 0 || iova >= LIMIT) {
      return -1;
    }
    const e = this.#entry(iova);
    if (e === 0) return -1;
    const perm = e % IOMMU_PAGE;
    if ((perm & (write ? IOPTE_WRITE : IOPTE_READ)) === 0) return -1;
    return e - perm + (iova % IOMMU_PAGE);
  }

  /** True when every page of `[iova, iova + len)` is mapped for reading, and for writing with `write`. */
  mapped(iova: number, len: number, write?: boolean): boolean {
    if (write === undefined) write = false;
    if (typeof len !== "number" || !Number.isInteger(len) || len < 1) return false;
    if (typeof iova !== "number" || !Number.isInteger(iova) || iova < 0) return false;
    const first = Math.floor(iova / IOMMU_PAGE), last = Math.floor((iova + len - 1) / IOMMU_PAGE);
    for (let p = first; p <= last; p++) {
      if (this.extract(p * IOMMU_PAGE, write) < 0) return false;
    }
    return true;
  }

  /** Present leaf entries, counted in RAM (for {@link IommuDriver.check}). */
  countMapped(): number {
    let n = 0;
    for (const leaf of this.#leaves.values()) {
      for (let i = 0; i < IOMMU_ENTRIES; i++) if ((this.#ram.read32(leaf + 8 * i) & 3) !== 0) n++;
    }
    return n;
  }

  /** Gives the tables back (the driver's destroy); returns how many there were. */
  releaseTables(free: (pa: number) => void): number {
    const n = this.tablePages;
    for (const t of this.#tables.splice(0)) free(t);
    if (this.#root !== 0) free(this.#root);
    this.#root = 0;
    this.#leaves.clear();
    return n;
  }

  #live(): void {
    if (this.#root === 0) {
      throw new KernelError("EINVAL", `domain ${this.id} (${this.device}) has no root table`);
    }
  }

  /** Throws EINVAL unless `[iova, iova + size)` is page-aligned and inside the arena. */
  #covered(iova: number, size: number, what: string): void {
    checkInteger("iova", iova, 0, LIMIT);
    if (iova % IOMMU_PAGE !== 0 || iova < this.base || iova + size > this.base + this.size) {
      throw new KernelError(
        "EINVAL",
        `${what} of [${hexs(iova)}, +${hexs(size)}): domain ${this.id}'s arena covers [${
          hexs(this.base)
        }, ${hexs(this.base + this.size)}) in pages`,
      );
    }
  }

  /**
   * Writes the leaf entries of the `n` pages from `iova`: page i to frame
   * `frames[first + i]` with `perm`, or, with no frames, cleared. Makes the
   * tables it needs (when mapping).
   */
  #store(
    iova: number,
    n: number,
    frames: ArrayLike<number> | null,
    first: number,
    perm: number,
  ): void {
    const ram = this.#ram;
    let key = -1, leaf = 0;
    for (let i = 0; i < n; i++) {
      const va = iova + i * IOMMU_PAGE, k = Math.floor(va / LEAF_SPAN);
      if (k !== key) {
        leaf = this.#leaf(va, true);
        key = k;
      }
      const at = leaf + 8 * (va / IOMMU_PAGE - k * IOMMU_ENTRIES);
      const f = frames === null ? 0 : frames[first + i]!, hi = Math.floor(f / TWO32);
      ram.write32(at + 4, hi);
      ram.write32(at, frames === null ? 0 : f - hi * TWO32 + perm);
    }
  }

  /**
   * The index of the first of the `n` pages from `iova` whose entry is
   * present (with `present`) or not (without); -1 when there is none.
   */
  #find(iova: number, n: number, present: boolean): number {
    const ram = this.#ram;
    let key = -1, leaf = 0;
    for (let i = 0; i < n; i++) {
      const va = iova + i * IOMMU_PAGE, k = Math.floor(va / LEAF_SPAN);
      if (k !== key) {
        leaf = this.#leaf(va, false);
        key = k;
      }
      const on = leaf !== 0 &&
        (ram.read32(leaf + 8 * (va / IOMMU_PAGE - k * IOMMU_ENTRIES)) & 3) !== 0;
      if (on === present) return i;
    }
    return -1;
  }

  /** The leaf entry of `iova` as a number (frame + permission), 0 when there is none. */
  #entry(iova: number): number {
    const leaf = this.#leaf(iova, false);
    if (leaf === 0) return 0;
    const at = leaf + 8 * (Math.floor(iova / IOMMU_PAGE) % IOMMU_ENTRIES);
    const lo = this.#ram.read32(at);
    if ((lo & 3) === 0) return 0;
    return (this.#ram.read32(at + 4) & 0xfffff) * TWO32 + (lo - (lo & 0xffc));
  }

  /**
   * The leaf table that maps `iova`: remembered, or found by a walk from
   * the root, made (with the tables above it) when `make` says so; 0 when
   * there is none.
   */
  #leaf(iova: number, make: boolean): number {
    const key = Math.floor(iova / LEAF_SPAN);
    const known = this.#leaves.get(key);
    if (known !== undefined) return known;
    const ram = this.#ram;
    let table = this.#root;
    for (let level = IOMMU_LEVELS - 1; level >= 1; level--) {
      const at = table + 8 * (Math.floor(iova / (IOMMU_PAGE * IOMMU_ENTRIES ** level)) % 512);
      const lo = ram.read32(at);
      if ((lo & 3) !== 0) {
        table = (ram.read32(at + 4) & 0xfffff) * TWO32 + (lo - (lo & 0xfff));
        continue;
      }
      if (!make) return 0;
      const t = this.#driver.newTable();
      this.#tables.push(t);
      const hi = Math.floor(t / TWO32);
      ram.write32(at + 4, hi);
      ram.write32(at, t - hi * TWO32 + (IOPTE_READ | IOPTE_WRITE));
      table = t;
    }
    this.#leaves.set(key, table);
    return table;
  }
}

/** The kernel's driver of the IOMMU: its domains, their contexts and invalidations. */
export class IommuDriver {
  /** Invalidation commands issued. */
  invalidations = 0;

  readonly #be: IommuBackend;
  /** The group of every domain's I/O address arena. */
  readonly vmemGroup: VmemGroup;
  readonly #domains: IommuDomain[] = [];
  readonly #byDevice = new Map<string, IommuDomain>();
  readonly #sources = new Map<number, string>();
  #down = false;
  #inv0: number;

  /**
   * Takes the IOMMU over: checks its ID, gives each device of `devices` a
   * domain and its context, and turns translation on. Throws (ENODEV,
   * ENOMEM, ENXIO) after undoing what it did when it cannot.
   */
  constructor(backend: IommuBackend, devices: readonly IommuDevice[]) {
    this.#be = backend;
    this.vmemGroup = backend.group ?? new VmemGroup();
    const id = backend.regs.read32(IOMMU_REG_ID);
    if (id !== IOMMU_ID) {
      throw new KernelError("ENODEV", `no IOMMU answers: its ID register reads ${hexs(id)}`);
    }
    this.#inv0 = backend.regs.read32(IOMMU_REG_INV_COUNT);
    for (const d of devices) this.#sources.set(d.source, d.name);
    try {
      for (const d of devices) {
        const domain = this.createDomain(d.name, d.limits);
        this.attach(d.source, domain);
      }
    } catch (e) {
      this.shutdown();
      throw e;
    }
    backend.regs.write32(IOMMU_REG_CTRL, IOMMU_CTRL_TE);
  }

  /** The domains, by number. */
  get domains(): readonly IommuDomain[] {
    return this.#domains.slice();
  }

  /** The domain of the device named `device`, or null when it is not behind the IOMMU. */
  domainOf(device: string): IommuDomain | null {
    return this.#byDevice.get(device) ?? null;
  }

  /**
   * A domain for `device`, whose arena covers the I/O virtual addresses
   * `limits` allow (in whole pages, from page 1, below 2^48), with its root
   * table. EINVAL for bad arguments or a window with no page in it.
   */
  createDomain(device: string, limits: Pick<DmaLimits, "minAddress" | "maxAddress">): IommuDomain {
    this.#up();
    if (typeof device !== "string" || device === "") {
      throw new KernelError("EINVAL", `device must be a non-empty string, got ${describe(device)}`);
    }
    if (this.#byDevice.has(device)) {
      throw new KernelError("EEXIST", `device ${device} already has domain`);
    }
    if (limits === null || typeof limits !== "object") {
      throw new KernelError("EINVAL", `limits must be an object, got ${describe(limits)}`);
    }
    const lo = checkInteger("minAddress", limits.minAddress);
    const hi = checkInteger("maxAddress", limits.maxAddress, lo);
    const base = Math.max(IOMMU_PAGE, Math.ceil(lo / IOMMU_PAGE) * IOMMU_PAGE);
    const end = Math.min(Math.floor((hi + 1) / IOMMU_PAGE) * IOMMU_PAGE, LIMIT);
    if (end <= base) {
      throw new KernelError(
        "EINVAL",
        `device ${device}: [${hexs(lo)}, ${hexs(hi)}] holds no whole I/O page above 0`,
      );
    }
    const root = this.newTable();
    const domain = new IommuDomain(
      this,
      this.#be.ram,
      this.#domains.length + 1,
      device,
      base,
      end - base,
      root,
    );
    this.#domains.push(domain);
    this.#byDevice.set(device, domain);
    return domain;
  }

  /**
   * Installs the context of source `source`: its DMA is translated by
   * `domain`'s tables from now on. EINVAL for a source outside the scope or
   * a domain with no root table; ENXIO when the IOMMU refuses.
   */
  attach(source: number, domain: IommuDomain): void {
    this.#up();
    checkInteger("source", source, 0, 0xffff);
    if (!this.#sources.has(source)) {
      throw new KernelError("EINVAL", `source ${source} is not in the IOMMU's scope`);
    }
    if (!(domain instanceof IommuDomain) || !this.#domains.includes(domain)) {
      throw new KernelError(
        "EINVAL",
        `domain must be one of this IOMMU's, got ${describe(domain)}`,
      );
    }
    if (domain.root === 0) {
      throw new KernelError(
        "EINVAL",
        `domain ${domain.id} (${domain.device}) has no root table: it was destroyed`,
      );
    }
    const r = this.#be.regs, hi = Math.floor(domain.root / TWO32);
    r.write32(IOMMU_REG_SOURCE, source);
    r.write32(IOMMU_REG_CTX_DOMAIN, domain.id);
    r.write32(IOMMU_REG_CTX_ROOT_LO, domain.root - hi * TWO32);
    r.write32(IOMMU_REG_CTX_ROOT_HI, hi);
    r.write32(IOMMU_REG_CTX_CMD, IOMMU_CTX_SET);
    this.#status("context of source", source);
  }

  /** Removes the context of `source`: its DMA faults from now on. */
  detach(source: number): void {
    this.#up();
    checkInteger("source", source, 0, 0xffff);
    if (!this.#sources.has(source)) {
      throw new KernelError("EINVAL", `source ${source} is not in the IOMMU's scope`);
    }
    this.#be.regs.write32(IOMMU_REG_SOURCE, source);
    this.#be.regs.write32(IOMMU_REG_CTX_CMD, IOMMU_CTX_CLEAR);
    this.#status("clearing of the context of source", source);
  }

  /**
   * Destroys `domain`: its tables go back and its arena is destroyed.
   * EBUSY while it maps pages or holds I/O virtual space.
   */
  destroyDomain(domain: IommuDomain): void {
    if (!(domain instanceof IommuDomain) || !this.#domains.includes(domain)) {
      throw new KernelError(
        "EINVAL",
        `domain must be one of this IOMMU's, got ${describe(domain)}`,
      );
    }
    if (domain.root === 0) throw new KernelError("EINVAL", `domain ${domain.id} is destroyed`);
    if (domain.mappedPages !== 0 || domain.inUse !== 0) {
      throw new KernelError(
        "EBUSY",
        `domain ${domain.id} still maps ${domain.mappedPages} pages and holds ${domain.inUse} bytes`,
      );
    }
    this.#invalidate(IOMMU_INV_DOMAIN, domain.id, 0, 0);
    domain.arena.destroy();
    domain.releaseTables((pa) => this.#be.freeTable(pa));
  }

  /** Invalidates `pages` pages from `iova` of `domain` in the IOTLB. */
  invalidatePages(domain: IommuDomain, iova: number, pages: number): void {
    this.#invalidate(IOMMU_INV_PAGES, domain.id, iova, pages);
  }

  /** A zeroed page for a table: ENOMEM when the kernel has none. */
  newTable(): number {
    const pa = this.#be.allocTable();
    if (pa < 0) throw new KernelError("ENOMEM", "no page left for an I/O page table");
    this.#be.ram.fill(pa, IOMMU_PAGE, 0);
    return pa;
  }

  /** What it did: maps, unmaps, invalidations, faults, pages and tables, and each domain. */
  summary(): IommuSummary {
    const r = this.#be.regs;
    const domains = this.#domains.filter((d) => d.root !== 0).map((d) => ({
      id: d.id,
      device: d.device,
      base: d.base,
      size: d.size,
      inUse: d.inUse,
      maps: d.maps,
      unmaps: d.unmaps,
      mappedPages: d.mappedPages,
      tablePages: d.tablePages,
      arena: arenaFigures(d.arena),
    }));
    let maps = 0, unmaps = 0, mappedPages = 0, tablePages = 0;
    for (const d of this.#domains) {
      maps += d.maps;
      unmaps += d.unmaps;
      mappedPages += d.mappedPages;
      tablePages += d.tablePages;
    }
    return {
      enabled: true,
      maps,
      unmaps,
      invalidations: this.invalidations,
      faults: r.read32(IOMMU_REG_FAULT_COUNT),
      mappedPages,
      tablePages,
      iotlb: { hits: r.read32(IOMMU_REG_IOTLB_HITS), misses: r.read32(IOMMU_REG_IOTLB_MISSES) },
      domains,
    };
  }

  /**
   * At shutdown: turns translation off, clears every context, destroys
   * every domain's arena and gives back the tables of every domain that
   * maps nothing. Returns what did not come back: bytes of I/O virtual
   * space still held, and the page-table pages of the domains that still
   * map pages (kept: leaked).
   */
  shutdown(): { iovaBytes: number; tablePages: number } {
    let iovaBytes = 0, tablePages = 0;
    if (this.#down) return { iovaBytes, tablePages };
    const r = this.#be.regs;
    r.write32(IOMMU_REG_CTRL, 0);
    for (const source of this.#sources.keys()) {
      r.write32(IOMMU_REG_SOURCE, source);
      r.write32(IOMMU_REG_CTX_CMD, IOMMU_CTX_CLEAR);
    }
    this.#invalidate(IOMMU_INV_GLOBAL, 0, 0, 0);
    for (const d of this.#domains) {
      if (d.root === 0) continue;
      iovaBytes += d.inUse;
      d.arena.destroy();
      if (d.mappedPages === 0) d.releaseTables((pa) => this.#be.freeTable(pa));
      else tablePages += d.tablePages;
    }
    this.#down = true;
    return { iovaBytes, tablePages };
  }

  /** Verifies each domain's arena, mapped pages and tables, and the invalidation count. */
  check(): void {
    if (this.#down) return;
    const fail = (why: string): never => {
      throw new KernelError("CORRUPT", `IommuDriver.check: ${why}`);
    };
    for (const d of this.#domains) {
      if (d.root === 0) continue;
      d.arena.check();
      const mapped = d.countMapped();
      if (mapped !== d.mappedPages) {
        fail(`domain ${d.id} counts ${d.mappedPages} mapped pages, its tables hold ${mapped}`);
      }
      if (d.inUse < 0 || d.inUse > d.arena.size(VMEM_ALLOC)) {
        fail(`domain ${d.id} holds ${d.inUse} bytes of its arena`);
      }
    }
    const hw = (this.#be.regs.read32(IOMMU_REG_INV_COUNT) - this.#inv0 + TWO32) % TWO32;
    if (hw !== this.invalidations % TWO32) {
      fail(`${this.invalidations} invalidations issued, the IOMMU carried out ${hw}`);
    }
  }

  #up(): void {
    if (this.#down) throw new KernelError("ENXIO", "the IOMMU driver is shut down");
  }

  #invalidate(cmd: number, domain: number, iova: number, pages: number): void {
    const r = this.#be.regs, hi = Math.floor(iova / TWO32);
    r.write32(IOMMU_REG_INV_DOMAIN, domain);
    if (cmd === IOMMU_INV_PAGES) {
      r.write32(IOMMU_REG_INV_ADDR_LO, iova - hi * TWO32);
      r.write32(IOMMU_REG_INV_ADDR_HI, hi);
      r.write32(IOMMU_REG_INV_PAGES, pages);
    }
    r.write32(IOMMU_REG_INV_CMD, cmd);
    this.#status("invalidation of domain", domain);
    this.invalidations++;
  }

  /** Throws ENXIO, naming the command (`what` and its number `n`), unless STATUS is OK. */
  #status(what: string, n: number): void {
    const st = this.#be.regs.read32(IOMMU_REG_STATUS);
    if (st !== IOMMU_ST_OK) {
      throw new KernelError(
        "ENXIO",
        `the IOMMU refused the ${what} ${n}: status ${st} (${STATUS_WORDS[st] ?? "unknown"})`,
      );
    }
  }
}

function hexs(n: number): string {
  return typeof n === "number" && Number.isInteger(n) ? "0x" + n.toString(16) : describe(n);
}
