/**
 * An IOMMU in the spirit of Intel VT-d and AMD-Vi, simplified: it stands
 * between the DMA ports of the devices placed behind it and RAM, and
 * translates every address those devices drive (an I/O virtual address)
 * through page tables the kernel keeps in guest RAM.
 *
 * Theory. Each device behind the IOMMU has a *source* number (its place in
 * the IOMMU's device scope, as a PCI requester ID in a DMAR table). A source
 * has a *context*: the *domain* it belongs to (a 16-bit tag) and the
 * physical address of its domain's root table; a source without one is
 * blocked (all its DMA faults). Contexts are written through the register
 * window (below). Until the kernel sets CTRL.TE, DMA is not translated at
 * all and passes to RAM as it is, as with VT-d's translation disabled.
 *
 * Page tables are {@link IOMMU_LEVELS}-level radix trees of 4 KiB tables of
 * 512 little-endian 8-byte entries, covering {@link IOMMU_ADDRESS_BITS}-bit
 * I/O virtual addresses (9 bits per level above the 12-bit page offset, the
 * root indexed by the highest bits). An entry is present when its read bit
 * ({@link IOPTE_READ}, bit 0) or its write bit ({@link IOPTE_WRITE}, bit 1)
 * is set; bits 12 to 51 hold the physical address of the next table, or of
 * the page in a leaf; other bits are ignored. The permission of a page is
 * the AND of the bits on the way down, as on VT-d.
 *
 * Translation: a transfer's runs (already checked against the device's own
 * constraints, which apply to the addresses it drives) are translated page
 * by page before any byte moves. A page is looked up in the IOTLB, a
 * direct-mapped cache tagged by domain and page number; on a miss the tables
 * are walked in RAM (the leaf table of the last walk is kept, as a
 * paging-structure cache) and the result cached. A page that is not present,
 * a write to a page without write permission (or a read of one without read
 * permission), an address past the address width, a table that is not RAM,
 * or a blocked source is a *translation fault*: recorded here (source,
 * device, I/O virtual address, access, reason) and on the device's port,
 * and the transfer moves nothing. Translated pages that follow one another
 * in RAM are joined into one run, so a buffer contiguous in RAM is still one
 * copy.
 *
 * The IOTLB and the leaf-table cache are only emptied by invalidation
 * commands: a page the kernel unmaps without invalidating still translates
 * to its old frame from the IOTLB, as on real hardware. Invalidation is
 * global, per domain, or for a range of pages of a domain. Changing a
 * context invalidates nothing either (entries are tagged by domain).
 *
 * Registers (32-bit, offsets from the window base):
 *
 * | offset | name          | access | meaning                                                      |
 * |--------|---------------|--------|--------------------------------------------------------------|
 * | 0x00   | ID            | RO     | `IOMMU_ID` ("IOMU")                                           |
 * | 0x04   | CAP           | RO     | levels (bits 0-3), address bits (8-15), sources (16-31)      |
 * | 0x08   | IOTLB_SIZE    | RO     | IOTLB entries                                                |
 * | 0x0C   | CTRL          | R/W    | bit 0 TE: translate (0: DMA passes untranslated)             |
 * | 0x10   | STATUS        | RO     | result of the last context or invalidation command (`IOMMU_ST_*`) |
 * | 0x14   | SOURCE        | R/W    | selects a source; a store loads CTX_* from its context       |
 * | 0x18   | CTX_DOMAIN    | R/W    | domain of the context to install (0 to 65535)                |
 * | 0x1C   | CTX_ROOT_LO   | R/W    | its root table's physical address, low 32 bits               |
 * | 0x20   | CTX_ROOT_HI   | R/W    | high bits                                                    |
 * | 0x24   | CTX_CMD       | W      | 1 SET: install CTX_* for SOURCE; 2 CLEAR: block SOURCE       |
 * | 0x30   | INV_DOMAIN    | R/W    | domain of a domain or page invalidation                      |
 * | 0x34   | INV_ADDR_LO   | R/W    | first I/O virtual address of a page invalidation, low bits   |
 * | 0x38   | INV_ADDR_HI   | R/W    | high bits                                                    |
 * | 0x3C   | INV_PAGES     | R/W    | pages of a page invalidation                                 |
 * | 0x40   | INV_CMD       | W      | 1 GLOBAL, 2 DOMAIN, 3 PAGES                                  |
 * | 0x44   | INV_COUNT     | RO     | invalidation commands carried out (modulo 2^32)              |
 * | 0x50   | FAULT_COUNT   | RO     | translation faults since power-on (modulo 2^32)              |
 * | 0x54   | FAULT_SOURCE  | RO     | last fault's source                                          |
 * | 0x58   | FAULT_ADDR_LO | RO     | its I/O virtual address, low 32 bits                         |
 * | 0x5C   | FAULT_ADDR_HI | RO     | high bits                                                    |
 * | 0x60   | FAULT_INFO    | R/W    | reason (bits 0-7, `IOMMU_FR_*`), bit 8 a write; a store clears it |
 * | 0x70   | IOTLB_HITS    | RO     | IOTLB hits (modulo 2^32)                                     |
 * | 0x74   | IOTLB_MISSES  | RO     | IOTLB misses: table walks (modulo 2^32)                      |
 *
 * A refused command (a source out of scope, a root that is 0, not
 * page-aligned or not RAM, a domain past 65535, an unknown command) changes
 * nothing and sets STATUS to say why.
 *
 * Data structures: contexts in an Int32Array (domain, -1 blocked) and a
 * Float64Array (root) per source; the IOTLB in typed arrays (domain, page
 * number, frame, permission per entry); the translated runs in a
 * Float64Array grown on demand. Invariants ({@link Iommu.check}): counters
 * are non-negative integers; a valid IOTLB entry has a domain in [0, 65535]
 * and a page-aligned frame; an installed context has a page-aligned root;
 * the fault log holds at most 16 faults. Cost: a page that hits the IOTLB
 * is a few comparisons; a miss reads one entry per level (one when the leaf
 * table is cached); translating and checking a transfer allocates nothing
 * unless it faults.
 *
 * @module
 */

import { checkInt, hex, MachineError } from "./errors.ts";
import type { Ram } from "./ram.ts";
import type { Bus, MmioHandlers } from "./bus.ts";
import type { DmaPort, DmaTranslator } from "./dma.ts";
import { fourcc, TWO32 } from "./bits.ts";

/** Bytes of an I/O page (and of a page table). */
export const IOMMU_PAGE = 4096;
/** Levels of the page tables. */
export const IOMMU_LEVELS = 4;
/** Bits of an I/O virtual address: 12 of page offset and 9 per level. */
export const IOMMU_ADDRESS_BITS: number = 12 + 9 * IOMMU_LEVELS;
/** Entries of a page table. */
export const IOMMU_ENTRIES = 512;
/** Sources (devices) one IOMMU can have in its scope. */
export const IOMMU_MAX_SOURCES = 256;
/** Highest domain number. */
export const IOMMU_MAX_DOMAIN = 0xffff;
/** IOTLB entries unless told otherwise. */
export const IOMMU_IOTLB_ENTRIES = 128;
/** Page-table entry bit: the device may read the page. */
export const IOPTE_READ = 1;
/** Page-table entry bit: the device may write the page. */
export const IOPTE_WRITE = 2;

/** ID register value: "IOMU". */
export const IOMMU_ID: number = fourcc("IOMU");
/** Register: identifier. */
export const IOMMU_REG_ID = 0x00;
/** Register: capabilities (levels, address bits, sources). */
export const IOMMU_REG_CAP = 0x04;
/** Register: IOTLB entries. */
export const IOMMU_REG_IOTLB_SIZE = 0x08;
/** Register: control (bit 0: translate). */
export const IOMMU_REG_CTRL = 0x0c;
/** Register: result of the last command. */
export const IOMMU_REG_STATUS = 0x10;
/** Register: the source a context command concerns. */
export const IOMMU_REG_SOURCE = 0x14;
/** Register: the context's domain. */
export const IOMMU_REG_CTX_DOMAIN = 0x18;
/** Register: the context's root table, low 32 bits. */
export const IOMMU_REG_CTX_ROOT_LO = 0x1c;
/** Register: the context's root table, high bits. */
export const IOMMU_REG_CTX_ROOT_HI = 0x20;
/** Register: context command. */
export const IOMMU_REG_CTX_CMD = 0x24;
/** Register: the domain of an invalidation. */
export const IOMMU_REG_INV_DOMAIN = 0x30;
/** Register: first address of a page invalidation, low 32 bits. */
export const IOMMU_REG_INV_ADDR_LO = 0x34;
/** Register: first address of a page invalidation, high bits. */
export const IOMMU_REG_INV_ADDR_HI = 0x38;
/** Register: pages of a page invalidation. */
export const IOMMU_REG_INV_PAGES = 0x3c;
/** Register: invalidation command. */
export const IOMMU_REG_INV_CMD = 0x40;
/** Register: invalidation commands carried out. */
export const IOMMU_REG_INV_COUNT = 0x44;
/** Register: translation faults since power-on. */
export const IOMMU_REG_FAULT_COUNT = 0x50;
/** Register: the last fault's source. */
export const IOMMU_REG_FAULT_SOURCE = 0x54;
/** Register: the last fault's address, low 32 bits. */
export const IOMMU_REG_FAULT_ADDR_LO = 0x58;
/** Register: the last fault's address, high bits. */
export const IOMMU_REG_FAULT_ADDR_HI = 0x5c;
/** Register: the last fault's reason and access; a store clears the fault shown. */
export const IOMMU_REG_FAULT_INFO = 0x60;
/** Register: IOTLB hits. */
export const IOMMU_REG_IOTLB_HITS = 0x70;
/** Register: IOTLB misses. */
export const IOMMU_REG_IOTLB_MISSES = 0x74;

/** CTRL bit: translate DMA. */
export const IOMMU_CTRL_TE = 1;
/** CTX_CMD: install the context of SOURCE. */
export const IOMMU_CTX_SET = 1;
/** CTX_CMD: remove the context of SOURCE (its DMA is blocked). */
export const IOMMU_CTX_CLEAR = 2;
/** INV_CMD: every IOTLB entry. */
export const IOMMU_INV_GLOBAL = 1;
/** INV_CMD: the entries of INV_DOMAIN. */
export const IOMMU_INV_DOMAIN = 2;
/** INV_CMD: the entries of INV_PAGES pages from INV_ADDR in INV_DOMAIN. */
export const IOMMU_INV_PAGES = 3;

/** STATUS: the last command was carried out. */
export const IOMMU_ST_OK = 0;
/** STATUS: SOURCE is not in the IOMMU's scope. */
export const IOMMU_ST_BAD_SOURCE = 1;
/** STATUS: the root table is 0, not page-aligned or not RAM. */
export const IOMMU_ST_BAD_ROOT = 2;
/** STATUS: a domain past 65535. */
export const IOMMU_ST_BAD_DOMAIN = 3;
/** STATUS: an unknown command, or a page invalidation of no pages or an unaligned address. */
export const IOMMU_ST_BAD_COMMAND = 4;

/** Why a translation faulted. */
export type IommuFaultReason =
  | "not-present"
  | "read-only"
  | "no-read"
  | "blocked"
  | "width"
  | "table";

/** FAULT_INFO reason codes, by reason (1 to 6, in the order of {@link IommuFaultReason}). */
export const IOMMU_FAULT_REASONS: readonly IommuFaultReason[] = Object.freeze([
  "not-present",
  "read-only",
  "no-read",
  "blocked",
  "width",
  "table",
]);

/** A translation the IOMMU refused. */
export interface IommuFault {
  /** The device's source number. */
  readonly source: number;
  /** The device's name. */
  readonly device: string;
  /** The I/O virtual address that faulted (the first byte of the refused page piece). */
  readonly addr: number;
  /** The access the device tried. */
  readonly access: "read" | "write";
  /** Why it was refused. */
  readonly reason: IommuFaultReason;
  /** The fault in words. */
  readonly message: string;
}

/** How an IOMMU is built. */
export interface IommuOptions {
  /** IOTLB entries: a power of two from 1 to 65536 (default {@link IOMMU_IOTLB_ENTRIES}). */
  iotlbEntries?: number;
  /** Place every device attached from now on behind it (default true). */
  placeAll?: boolean;
}

/** A row of the IOMMU's device scope. */
export interface IommuScopeEntry {
  /** The device's name. */
  readonly name: string;
  /** Its source number. */
  readonly source: number;
}

const LOG = 16;
const LIMIT = 2 ** IOMMU_ADDRESS_BITS;
const PER_PAGE = 1 / IOMMU_PAGE;
// Reason codes (FAULT_INFO bits 0-7): one more than the reason's index in IOMMU_FAULT_REASONS.
const FR_NOT_PRESENT = 1, FR_READ_ONLY = 2, FR_NO_READ = 3, FR_BLOCKED = 4, FR_WIDTH = 5;
const FR_TABLE = 6;

/** The IOMMU: contexts, page-table walks, the IOTLB, faults and its registers. */
export class Iommu implements DmaTranslator, MmioHandlers {
  /** Name in the bus's window list. */
  readonly name: string = "iommu0";
  /** Base of its register window. */
  readonly base: number;
  /** IOTLB entries. */
  readonly iotlbEntries: number;
  /** True when devices attached to the machine are placed behind it as they come. */
  readonly placeAll: boolean;
  /** Transfers translated (or passed untranslated while TE is off). */
  translations = 0;
  /** Pages found in the IOTLB. */
  iotlbHits = 0;
  /** Pages looked up in the tables. */
  iotlbMisses = 0;
  /** Invalidation commands carried out. */
  invalidations = 0;
  /** Translation faults. */
  faults = 0;
  /** The most recent fault, or null. */
  lastFault: IommuFault | null = null;

  readonly #ram: Ram;
  readonly #names: string[] = [];
  readonly #ctxDomain = new Int32Array(IOMMU_MAX_SOURCES).fill(-1);
  readonly #ctxRoot = new Float64Array(IOMMU_MAX_SOURCES);
  readonly #tlbDomain: Int32Array;
  readonly #tlbPage: Float64Array;
  readonly #tlbFrame: Float64Array;
  readonly #tlbPerm: Uint8Array;
  readonly #tlbMask: number;
  readonly #log: IommuFault[] = [];
  #out: Float64Array = new Float64Array(64);
  #enabled = false;
  // The leaf table of the last walk: its domain, the page number of its
  // first entry divided by 512, its address and the permission above it.
  #leafDomain = -1;
  #leafKey = -1;
  #leafTable = 0;
  #leafPerm = 0;
  // What the last walk found.
  #walkFrame = 0;
  #walkPerm = 0;
  // Registers.
  #status = IOMMU_ST_OK;
  #sel = 0;
  #ctxDomainLatch = 0;
  #ctxRootLo = 0;
  #ctxRootHi = 0;
  #invDomain = 0;
  #invLo = 0;
  #invHi = 0;
  #invPages = 0;
  #faultShown = 0;

  /**
   * An IOMMU over `ram` with its register window on `bus` (a page in the
   * MMIO hole). Throws `EINVAL` for a bad option, as the bus does when the
   * hole is full.
   */
  constructor(ram: Ram, bus: Bus, options?: IommuOptions) {
    if (options === undefined) options = {};
    if (options === null || typeof options !== "object") {
      throw new MachineError("EINVAL", `IOMMU options must be an object, got ${hex(options)}`);
    }
    const entries = checkInt("iotlbEntries", options.iotlbEntries ?? IOMMU_IOTLB_ENTRIES, 1, 65536);
    if ((entries & (entries - 1)) !== 0) {
      throw new MachineError("EINVAL", `iotlbEntries must be a power of two, got ${entries}`);
    }
    const placeAll = options.placeAll ?? true;
    if (typeof placeAll !== "boolean") {
      throw new MachineError("EINVAL", `placeAll must be a boolean, got ${hex(placeAll)}`);
    }
    this.#ram = ram;
    this.iotlbEntries = entries;
    this.placeAll = placeAll;
    this.#tlbMask = entries - 1;
    this.#tlbDomain = new Int32Array(entries).fill(-1);
    this.#tlbPage = new Float64Array(entries);
    this.#tlbFrame = new Float64Array(entries);
    this.#tlbPerm = new Uint8Array(entries);
    this.base = bus.allocate(IOMMU_PAGE);
    bus.map(this.name, this.base, IOMMU_PAGE, this);
  }

  /** The device scope: every device placed behind the IOMMU, by source number. */
  get scope(): readonly IommuScopeEntry[] {
    return this.#names.map((name, source) => Object.freeze({ name, source }));
  }

  /** True when no further device can be placed behind it. */
  get full(): boolean {
    return this.#names.length === IOMMU_MAX_SOURCES;
  }

  /** True while it translates (CTRL.TE). */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** The RAM runs of the last translation. */
  get out(): Float64Array {
    return this.#out;
  }

  /** The last few faults, oldest first. */
  faultLog(): readonly IommuFault[] {
    return this.#log.slice();
  }

  /**
   * Places the device of `port` behind the IOMMU as the next source number,
   * which it returns. Throws `ENOSPC` when the scope is full, `EBUSY` when
   * the port is already behind an IOMMU.
   */
  place(port: DmaPort): number {
    if (this.full) {
      throw new MachineError("ENOSPC", `the IOMMU has no source left for ${hex(port?.name)}`);
    }
    const source = this.#names.length;
    port.placeBehind(this, source);
    this.#names.push(port.name);
    return source;
  }

  /** Translates a transfer's runs (see the module text and {@link DmaTranslator}). */
  translate(source: number, port: DmaPort, write: boolean, runs: Float64Array, n: number): number {
    this.translations++;
    let out: Float64Array = this.#out;
    if (!this.#enabled) {
      if (out.length < 2 * n) out = this.#out = new Float64Array(2 * n);
      for (let i = 0; i < 2 * n; i++) out[i] = runs[i]!;
      return n;
    }
    const domain = this.#ctxDomain[source] ?? -1;
    if (domain < 0) return this.#fault(source, port, runs[0]!, runs[1]!, write, FR_BLOCKED);
    const root = this.#ctxRoot[source]!;
    const need = write ? IOPTE_WRITE : IOPTE_READ;
    const mask = this.#tlbMask, tag = domain << 4;
    const tlbDomain = this.#tlbDomain, tlbPage = this.#tlbPage;
    const tlbFrame = this.#tlbFrame, tlbPerm = this.#tlbPerm;
    let k = -2, end = -1;
    for (let i = 0; i < n; i++) {
      let p = runs[2 * i]!, left = runs[2 * i + 1]!;
      if (p + left > LIMIT) return this.#fault(source, port, p, left, write, FR_WIDTH);
      while (left > 0) {
        const page = Math.floor(p * PER_PAGE);
        const off = p - page * IOMMU_PAGE;
        const len = left < IOMMU_PAGE - off ? left : IOMMU_PAGE - off;
        // `page ^ tag` takes the page number modulo 2^32: a hash, exact enough.
        const slot = (page ^ tag) & mask;
        let frame: number, perm: number;
        if (tlbPage[slot] === page && tlbDomain[slot] === domain) {
          this.iotlbHits++;
          frame = tlbFrame[slot]!;
          perm = tlbPerm[slot]!;
        } else {
          this.iotlbMisses++;
          const why = this.#walk(domain, root, page);
          if (why !== 0) return this.#fault(source, port, p, left, write, why);
          frame = this.#walkFrame;
          perm = this.#walkPerm;
          tlbDomain[slot] = domain;
          tlbPage[slot] = page;
          tlbFrame[slot] = frame;
          tlbPerm[slot] = perm;
        }
        if ((perm & need) === 0) {
          return this.#fault(source, port, p, left, write, write ? FR_READ_ONLY : FR_NO_READ);
        }
        const pa = frame + off;
        if (pa === end) out[k + 1]! += len;
        else {
          k += 2;
          if (k + 2 > out.length) out = this.#grow();
          out[k] = pa;
          out[k + 1] = len;
        }
        end = pa + len;
        p += len;
        left -= len;
      }
    }
    return (k + 2) >> 1;
  }

  /** Bus entry point: a 32-bit register load. */
  read32(offset: number): number {
    switch (offset) {
      case IOMMU_REG_ID:
        return IOMMU_ID;
      case IOMMU_REG_CAP:
        return (IOMMU_LEVELS | (IOMMU_ADDRESS_BITS << 8) | (IOMMU_MAX_SOURCES << 16)) >>> 0;
      case IOMMU_REG_IOTLB_SIZE:
        return this.iotlbEntries;
      case IOMMU_REG_CTRL:
        return this.#enabled ? IOMMU_CTRL_TE : 0;
      case IOMMU_REG_STATUS:
        return this.#status;
      case IOMMU_REG_SOURCE:
        return this.#sel;
      case IOMMU_REG_CTX_DOMAIN:
        return this.#ctxDomainLatch;
      case IOMMU_REG_CTX_ROOT_LO:
        return this.#ctxRootLo;
      case IOMMU_REG_CTX_ROOT_HI:
        return this.#ctxRootHi;
      case IOMMU_REG_INV_DOMAIN:
        return this.#invDomain;
      case IOMMU_REG_INV_ADDR_LO:
        return this.#invLo;
      case IOMMU_REG_INV_ADDR_HI:
        return this.#invHi;
      case IOMMU_REG_INV_PAGES:
        return this.#invPages;
      case IOMMU_REG_INV_COUNT:
        return this.invalidations % TWO32;
      case IOMMU_REG_FAULT_COUNT:
        return this.faults % TWO32;
      case IOMMU_REG_FAULT_SOURCE:
      case IOMMU_REG_FAULT_ADDR_LO:
      case IOMMU_REG_FAULT_ADDR_HI:
      case IOMMU_REG_FAULT_INFO:
        return this.#faultReg(offset);
      case IOMMU_REG_IOTLB_HITS:
        return this.iotlbHits % TWO32;
      case IOMMU_REG_IOTLB_MISSES:
        return this.iotlbMisses % TWO32;
      default:
        return 0;
    }
  }

  /** Bus entry point: a 32-bit register store. */
  write32(offset: number, value: number): void {
    const v = value >>> 0;
    switch (offset) {
      case IOMMU_REG_CTRL:
        this.#enabled = (v & IOMMU_CTRL_TE) !== 0;
        return;
      case IOMMU_REG_SOURCE:
        this.#sel = v;
        this.#loadLatches();
        return;
      case IOMMU_REG_CTX_DOMAIN:
        this.#ctxDomainLatch = v;
        return;
      case IOMMU_REG_CTX_ROOT_LO:
        this.#ctxRootLo = v;
        return;
      case IOMMU_REG_CTX_ROOT_HI:
        this.#ctxRootHi = v;
        return;
      case IOMMU_REG_CTX_CMD:
        this.#status = this.#context(v);
        return;
      case IOMMU_REG_INV_DOMAIN:
        this.#invDomain = v;
        return;
      case IOMMU_REG_INV_ADDR_LO:
        this.#invLo = v;
        return;
      case IOMMU_REG_INV_ADDR_HI:
        this.#invHi = v;
        return;
      case IOMMU_REG_INV_PAGES:
        this.#invPages = v;
        return;
      case IOMMU_REG_INV_CMD:
        this.#status = this.#invalidate(v);
        return;
      case IOMMU_REG_FAULT_INFO:
        this.#faultShown = this.faults;
        return;
    }
  }

  /** Verifies the counters, the contexts, the IOTLB and the fault log. */
  check(): void {
    const fail = (why: string): never => {
      throw new MachineError("CORRUPT", `Iommu.check: ${why}`);
    };
    for (const [k, v] of Object.entries(this.counters())) {
      if (!Number.isInteger(v) || v < 0) fail(`${k} is ${v}`);
    }
    for (let s = 0; s < IOMMU_MAX_SOURCES; s++) {
      const d = this.#ctxDomain[s]!, root = this.#ctxRoot[s]!;
      if (d < 0) {
        if (root !== 0) fail(`blocked source ${s} keeps a root table`);
        continue;
      }
      if (s >= this.#names.length) fail(`source ${s} has a context but is not in the scope`);
      if (d > IOMMU_MAX_DOMAIN || root <= 0 || root % IOMMU_PAGE !== 0) {
        fail(`source ${s} has context domain ${d} root ${hex(root)}`);
      }
    }
    for (let i = 0; i < this.iotlbEntries; i++) {
      const d = this.#tlbDomain[i]!;
      if (d < 0) continue;
      const f = this.#tlbFrame[i]!;
      if (d > IOMMU_MAX_DOMAIN || f < 0 || f % IOMMU_PAGE !== 0 || this.#tlbPerm[i]! > 3) {
        fail(`IOTLB entry ${i} is domain ${d} frame ${hex(f)} permission ${this.#tlbPerm[i]}`);
      }
    }
    if (this.#log.length > LOG || (this.faults > 0) !== (this.lastFault !== null)) {
      fail("fault log");
    }
  }

  /** The counters as a plain object (for summaries and tests). */
  counters(): {
    translations: number;
    iotlbHits: number;
    iotlbMisses: number;
    invalidations: number;
    faults: number;
  } {
    return {
      translations: this.translations,
      iotlbHits: this.iotlbHits,
      iotlbMisses: this.iotlbMisses,
      invalidations: this.invalidations,
      faults: this.faults,
    };
  }

  /**
   * Walks the tables of `domain` from `root` to `page`'s entry: 0 with
   * #walkFrame and #walkPerm set, or the fault's reason code.
   */
  #walk(domain: number, root: number, page: number): number {
    const ram = this.#ram;
    const key = Math.floor(page / IOMMU_ENTRIES);
    let table: number, perm: number;
    if (domain === this.#leafDomain && key === this.#leafKey) {
      table = this.#leafTable;
      perm = this.#leafPerm;
    } else {
      table = root;
      perm = IOPTE_READ | IOPTE_WRITE;
      for (let level = IOMMU_LEVELS - 1; level >= 1; level--) {
        if (!ram.isRam(table, IOMMU_PAGE)) return FR_TABLE;
        const index = Math.floor(page / IOMMU_ENTRIES ** level) % IOMMU_ENTRIES;
        const lo = ram.read32(table + 8 * index), hi = ram.read32(table + 8 * index + 4);
        if ((lo & 3) === 0) return FR_NOT_PRESENT;
        perm &= lo & 3;
        table = (hi & 0xfffff) * TWO32 + (lo - (lo & 0xfff));
      }
      if (!ram.isRam(table, IOMMU_PAGE)) return FR_TABLE;
      this.#leafDomain = domain;
      this.#leafKey = key;
      this.#leafTable = table;
      this.#leafPerm = perm;
    }
    const at = table + 8 * (page - key * IOMMU_ENTRIES);
    const lo = this.#ram.read32(at), hi = this.#ram.read32(at + 4);
    if ((lo & 3) === 0) return FR_NOT_PRESENT;
    this.#walkFrame = (hi & 0xfffff) * TWO32 + (lo - (lo & 0xfff));
    this.#walkPerm = perm & lo & 3;
    return 0;
  }

  /** Records a translation fault here and on `port`; returns -1. */
  #fault(
    source: number,
    port: DmaPort,
    addr: number,
    len: number,
    write: boolean,
    code: number,
  ): -1 {
    const device = this.#names[source] ?? port.name;
    const reason = IOMMU_FAULT_REASONS[code - 1]!;
    const domain = this.#ctxDomain[source] ?? -1;
    const where = `I/O virtual ${hex(addr)}`;
    const message = code === FR_BLOCKED
      ? `${device} (source ${source}) has no context: its DMA is blocked`
      : code === FR_WIDTH
      ? `${where}+${hex(len)} is past the IOMMU's ${IOMMU_ADDRESS_BITS}-bit address width`
      : code === FR_TABLE
      ? `a page table of domain ${domain} on the way to ${where} is not RAM`
      : code === FR_NOT_PRESENT
      ? `${where} is not mapped in domain ${domain}`
      : code === FR_READ_ONLY
      ? `write to ${where}, which domain ${domain} maps read-only`
      : `read of ${where}, which domain ${domain} maps without read permission`;
    const f: IommuFault = Object.freeze({
      source,
      device,
      addr,
      access: write ? "write" : "read",
      reason,
      message,
    });
    this.faults++;
    this.lastFault = f;
    if (this.#log.length === LOG) this.#log.shift();
    this.#log.push(f);
    port.fault("translation", write ? "write" : "read", addr, len, message);
    return -1;
  }

  #grow(): Float64Array {
    const grown = new Float64Array(2 * this.#out.length);
    grown.set(this.#out);
    return this.#out = grown;
  }

  /** Loads the CTX_* registers from the selected source's context. */
  #loadLatches(): void {
    const s = this.#sel;
    const d = s < IOMMU_MAX_SOURCES ? this.#ctxDomain[s]! : -1;
    const root = d < 0 ? 0 : this.#ctxRoot[s]!;
    this.#ctxDomainLatch = d < 0 ? 0 : d;
    this.#ctxRootHi = Math.floor(root / TWO32);
    this.#ctxRootLo = root - this.#ctxRootHi * TWO32;
  }

  /** Carries out a context command; returns the status. */
  #context(cmd: number): number {
    const s = this.#sel;
    if (cmd !== IOMMU_CTX_SET && cmd !== IOMMU_CTX_CLEAR) return IOMMU_ST_BAD_COMMAND;
    if (s >= this.#names.length) return IOMMU_ST_BAD_SOURCE;
    if (cmd === IOMMU_CTX_CLEAR) {
      this.#ctxDomain[s] = -1;
      this.#ctxRoot[s] = 0;
      return IOMMU_ST_OK;
    }
    const root = this.#ctxRootHi * TWO32 + this.#ctxRootLo;
    if (root === 0 || root % IOMMU_PAGE !== 0 || !this.#ram.isRam(root, IOMMU_PAGE)) {
      return IOMMU_ST_BAD_ROOT;
    }
    if (this.#ctxDomainLatch > IOMMU_MAX_DOMAIN) return IOMMU_ST_BAD_DOMAIN;
    this.#ctxDomain[s] = this.#ctxDomainLatch;
    this.#ctxRoot[s] = root;
    return IOMMU_ST_OK;
  }

  /** Carries out an invalidation command; returns the status. */
  #invalidate(cmd: number): number {
    const d = this.#invDomain, tlb = this.#tlbDomain;
    switch (cmd) {
      case IOMMU_INV_GLOBAL:
        tlb.fill(-1);
        this.#leafDomain = -1;
        break;
      case IOMMU_INV_DOMAIN:
        for (let i = 0; i < tlb.length; i++) if (tlb[i] === d) tlb[i] = -1;
        if (this.#leafDomain === d) this.#leafDomain = -1;
        break;
      case IOMMU_INV_PAGES: {
        const addr = this.#invHi * TWO32 + this.#invLo, n = this.#invPages;
        if (n === 0 || addr % IOMMU_PAGE !== 0) return IOMMU_ST_BAD_COMMAND;
        const first = addr / IOMMU_PAGE, last = first + n;
        if (n > tlb.length) {
          for (let i = 0; i < tlb.length; i++) {
            const p = this.#tlbPage[i]!;
            if (tlb[i] === d && p >= first && p < last) tlb[i] = -1;
          }
        } else {
          for (let p = first; p < last; p++) {
            const slot = (p ^ (d << 4)) & this.#tlbMask;
            if (tlb[slot] === d && this.#tlbPage[slot] === p) tlb[slot] = -1;
          }
        }
        if (this.#leafDomain === d) this.#leafDomain = -1;
        break;
      }
      default:
        return IOMMU_ST_BAD_COMMAND;
    }
    this.invalidations++;
    return IOMMU_ST_OK;
  }

  #faultReg(offset: number): number {
    const f = this.lastFault;
    if (f === null || this.faults === this.#faultShown) return 0;
    switch (offset) {
      case IOMMU_REG_FAULT_SOURCE:
        return f.source;
      case IOMMU_REG_FAULT_ADDR_LO:
        return f.addr % TWO32;
      case IOMMU_REG_FAULT_ADDR_HI:
        return Math.floor(f.addr / TWO32) % TWO32;
      default:
        return (IOMMU_FAULT_REASONS.indexOf(f.reason) + 1) | (f.access === "write" ? 0x100 : 0);
    }
  }
}
