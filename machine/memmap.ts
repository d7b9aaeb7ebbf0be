/**
 * The memory map, as firmware hands it to the kernel (an E820 table).
 *
 * Theory. A map is a list of disjoint, page-aligned regions sorted by base,
 * each typed `ram` (usable memory, backed by a RAM slot), `reserved` (present
 * but not the kernel's: the real-mode vector table, the legacy video and ROM
 * hole) or `mmio` (a hole where device register windows are placed). Gaps
 * between regions decode to nothing. Presets:
 *
 * - `isa`: a 16 MiB machine (or `ramSize` up to 16 MiB): the first page and
 *   640 KiB..1 MiB reserved, RAM elsewhere below `ramSize`, and the MMIO hole
 *   at 3 GiB..4 GiB where every preset has it.
 * - `pc` (the default): `ramSize` bytes of memory, 512 MiB unless told.
 *   Below 3 GiB as `isa`; the 3 GiB..4 GiB MMIO hole; memory past 3 GiB is
 *   remapped above 4 GiB, as a PC chipset does. The first page and the
 *   640 KiB..1 MiB hole are lost to RAM (reported reserved).
 * - `big`: `pc` with 64 GiB.
 *
 * Invariants (see {@link MemoryMap.check}): regions sorted, disjoint,
 * page-aligned, non-empty, named. Cost: lookups are a binary search over a
 * handful of regions.
 *
 * @module
 */

import { checkInt, hex, MachineError } from "./errors.ts";

/** Bytes per page: the granularity of every region. */
export const PAGE_SIZE = 4096;

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Start of the MMIO hole of every preset: 3 GiB. */
export const MMIO_HOLE_BASE: number = 3 * GiB;
/** End (exclusive) of the MMIO hole of every preset: 4 GiB. */
export const MMIO_HOLE_END: number = 4 * GiB;

/** What a region of the physical address space holds. */
export type RegionType = "ram" | "reserved" | "mmio";

/** One entry of the memory map. */
export interface MemoryRegion {
  /** First byte (page-aligned). */
  readonly base: number;
  /** Length in bytes (a positive multiple of the page size). */
  readonly size: number;
  /** What the region holds. */
  readonly type: RegionType;
  /** A name for the log: "conventional memory", "pci hole", ... */
  readonly name: string;
}

/** Names of the preset maps. */
export type Preset = "isa" | "pc" | "big";

/** Options of {@link presetMemoryMap}. */
export interface PresetOptions {
  /**
   * Bytes of memory: a multiple of the page size. `isa`: (1 MiB, 16 MiB],
   * default 16 MiB; `pc`: at least 2 MiB, default 512 MiB; `big`: default 64 GiB.
   */
  ramSize?: number;
}

/** The physical memory map: sorted, disjoint, typed regions. */
export class MemoryMap {
  /** The regions, sorted by base. */
  readonly regions: readonly MemoryRegion[];

  /**
   * Builds a map from `regions` (any order). Throws `EINVAL` naming the
   * region when one is unaligned, empty, of an unknown type, or overlaps another.
   */
  constructor(regions: readonly MemoryRegion[]) {
    if (!Array.isArray(regions)) {
      throw new MachineError("EINVAL", `regions must be an array, got ${hex(regions)}`);
    }
    const list = regions.map((r, i) => {
      const base = checkInt(`regions[${i}].base`, r?.base);
      const size = checkInt(`regions[${i}].size`, r?.size, 1);
      if (base % PAGE_SIZE !== 0) {
        throw new MachineError(
          "EINVAL",
          `regions[${i}].base must be a multiple of ${PAGE_SIZE}, got ${hex(base)}`,
        );
      }
      if (size % PAGE_SIZE !== 0) {
        throw new MachineError(
          "EINVAL",
          `regions[${i}].size must be a multiple of ${PAGE_SIZE}, got ${hex(size)}`,
        );
      }
      if (base + size > Number.MAX_SAFE_INTEGER) {
        throw new MachineError("EINVAL", `regions[${i}] ends past 2^53-1: base ${hex(base)}`);
      }
      if (r.type !== "ram" && r.type !== "reserved" && r.type !== "mmio") {
        throw new MachineError(
          "EINVAL",
          `regions[${i}].type must be "ram", "reserved" or "mmio", got ${hex(r.type)}`,
        );
      }
      const name = typeof r.name === "string" && r.name !== "" ? r.name : r.type;
      return Object.freeze({ base, size, type: r.type, name });
    }).sort((a, b) => a.base - b.base);
    for (let i = 1; i < list.length; i++) {
      const p = list[i - 1]!;
      if (list[i]!.base < p.base + p.size) {
        throw new MachineError(
          "EINVAL",
          `region "${list[i]!.name}" at ${hex(list[i]!.base)} overlaps "${p.name}" (${
            hex(p.base)
          }+${hex(p.size)})`,
        );
      }
    }
    this.regions = Object.freeze(list);
  }

  /** The regions of type `type`, sorted by base. */
  ofType(type: RegionType): MemoryRegion[] {
    return this.regions.filter((r) => r.type === type);
  }

  /** Total bytes of `ram` regions. */
  ramSize(): number {
    let n = 0;
    for (const r of this.regions) if (r.type === "ram") n += r.size;
    return n;
  }

  /** One past the last byte of RAM (0 when there is none). */
  ramEnd(): number {
    let end = 0;
    for (const r of this.regions) if (r.type === "ram") end = Math.max(end, r.base + r.size);
    return end;
  }

  /** The region holding `pa`, or `undefined` when nothing decodes there. */
  find(pa: number): MemoryRegion | undefined {
    const rs = this.regions;
    let lo = 0, hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = rs[mid]!;
      if (pa < r.base) hi = mid - 1;
      else if (pa >= r.base + r.size) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** The map as E820-style lines: `0x0000000000001000-0x000000000009ffff ram conventional memory`. */
  format(): string[] {
    return this.regions.map((r) =>
      `${pad(r.base)}-${pad(r.base + r.size - 1)} ${r.type.padEnd(8)} ${r.name}`
    );
  }

  /** Verifies sorting, alignment and disjointness; throws on the first broken invariant. */
  check(): void {
    for (let i = 0; i < this.regions.length; i++) {
      const r = this.regions[i]!;
      if (r.base % PAGE_SIZE !== 0 || r.size % PAGE_SIZE !== 0 || r.size <= 0) {
        throw new MachineError("CORRUPT", `MemoryMap.check: region ${i} unaligned or empty`);
      }
      if (i > 0 && r.base < this.regions[i - 1]!.base + this.regions[i - 1]!.size) {
        throw new MachineError(
          "CORRUPT",
          `MemoryMap.check: regions ${i - 1} and ${i} overlap or are unsorted`,
        );
      }
    }
  }
}

function pad(v: number): string {
  return "0x" + v.toString(16).padStart(16, "0");
}

/**
 * The memory map of a preset machine. Throws `EINVAL` naming `preset` or
 * `ramSize` when they are not acceptable.
 */
export function presetMemoryMap(preset?: Preset, options?: PresetOptions): MemoryMap {
  if (preset === undefined) preset = "pc";
  if (options === undefined) options = {};
  if (preset !== "isa" && preset !== "pc" && preset !== "big") {
    throw new MachineError("EINVAL", `preset must be "isa", "pc" or "big", got ${hex(preset)}`);
  }
  const dflt = preset === "isa" ? 16 * MiB : preset === "pc" ? 512 * MiB : 64 * GiB;
  const ramSize = options.ramSize ?? dflt;
  const min = preset === "isa" ? MiB + PAGE_SIZE : 2 * MiB;
  const max = preset === "isa" ? 16 * MiB : 2 ** 46;
  checkInt("ramSize", ramSize, min, max);
  if (ramSize % PAGE_SIZE !== 0) {
    throw new MachineError(
      "EINVAL",
      `ramSize must be a multiple of ${PAGE_SIZE}, got ${hex(ramSize)}`,
    );
  }
  const low = Math.min(ramSize, MMIO_HOLE_BASE);
  const regions: MemoryRegion[] = [
    { base: 0, size: PAGE_SIZE, type: "reserved", name: "real-mode vectors and BIOS data" },
    { base: PAGE_SIZE, size: 640 * 1024 - PAGE_SIZE, type: "ram", name: "conventional memory" },
    { base: 640 * 1024, size: 384 * 1024, type: "reserved", name: "legacy video and ROM" },
    { base: MiB, size: low - MiB, type: "ram", name: "extended memory" },
    {
      base: MMIO_HOLE_BASE,
      size: MMIO_HOLE_END - MMIO_HOLE_BASE,
      type: "mmio",
      name: "pci hole",
    },
  ];
  if (ramSize > MMIO_HOLE_BASE) {
    regions.push({
      base: MMIO_HOLE_END,
      size: ramSize - MMIO_HOLE_BASE,
      type: "ram",
      name: "high memory",
    });
  }
  return new MemoryMap(regions);
}
