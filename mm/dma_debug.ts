/**
 * DMA-API debugging, as Linux's CONFIG_DMA_API_DEBUG: bus_dma tracks every
 * loaded map and reports each misuse as a violation naming the map, the
 * device and the address.
 *
 * Theory. Each loaded map has two sides: the addresses its device uses (its
 * segments, bounce space included; I/O virtual addresses behind an IOMMU)
 * and the memory the CPU uses (the source's physical pages, where bounced
 * or translated pieces really live). The tracker
 * sees the device side through a {@link DmaMonitor} on each device's port
 * (every transfer that moved data) and the CPU side through the kernel's
 * accessors that drivers use ({@link DmaDebug.cpu}), and keeps two facts
 * per loaded map:
 *
 * - `dirty`: the CPU may have written the memory since the last PREWRITE
 *   sync (true from the load: the CPU filled the buffer before it). The
 *   device reading a dirty map is a violation (`no-prewrite`): with a bounce
 *   page in between it would read stale bytes.
 * - `deviceWrote`: the device wrote the map since the last POSTREAD sync.
 *   The CPU reading that memory is a violation (`no-postread`).
 *
 * Besides: a map unloaded while its device still has work queued
 * (`unload-in-flight`, from the port's in-flight count), an unload of an
 * unloaded map (`double-unload`), a load of a loaded map (`load-loaded`), a
 * sync of an unloaded map (`sync-unloaded`), a device transfer that no
 * loaded map of that device covers (`outside-maps`), and maps and DMA
 * memory still there at shutdown (`leak`). Each kind is reported once per
 * load of a map; every violation is counted, the first
 * {@link VIOLATIONS_LISTED} are kept with their message.
 *
 * Data structures: per loaded map its two sides as flat (address, length)
 * arrays, and per device name its loaded maps. Cost: a transfer or a CPU
 * access looks at the loaded maps of one device (or all, for the CPU): a few
 * in practice. This is a debugging aid and allocates freely.
 *
 * @module
 */

import type { DmaMonitor, DmaPort } from "../machine/mod.ts";
import {
  type DmaBackend,
  type DmaDebugHooks,
  type DmaMap,
  type DmaMemory,
  mapLoad,
} from "./bus_dma.ts";

/** What went wrong. */
export type DmaViolationKind =
  | "no-prewrite"
  | "no-postread"
  | "unload-in-flight"
  | "double-unload"
  | "load-loaded"
  | "sync-unloaded"
  | "outside-maps"
  | "leak";

/** One misuse of the DMA API. */
export interface DmaViolation {
  /** What went wrong. */
  readonly kind: DmaViolationKind;
  /** The map (or, for a DMA memory leak, the memory) concerned. */
  readonly map: string;
  /** The device whose map it is. */
  readonly device: string;
  /** The address concerned (0 when none is). */
  readonly addr: number;
  /** The violation in words. */
  readonly message: string;
}

/** Violations kept with their message; the rest are counted. */
export const VIOLATIONS_LISTED = 32;

const BUS_DMASYNC_PREWRITE = 2;
const BUS_DMASYNC_POSTREAD = 4;

interface Tracked {
  map: DmaMap;
  device: string;
  /** Device side: (address, length) pairs. */
  dev: number[];
  /** CPU side: (address, length) pairs. */
  cpu: number[];
  dirty: boolean;
  deviceWrote: boolean;
  reported: Set<DmaViolationKind>;
}

/** The tracker; bus_dma calls its hooks, ports report to it. */
export class DmaDebug implements DmaMonitor, DmaDebugHooks {
  /** Violations found. */
  violations = 0;
  /** The first {@link VIOLATIONS_LISTED}. */
  readonly list: DmaViolation[] = [];

  readonly #be: DmaBackend;
  readonly #maps = new Map<DmaMap, Tracked>();
  readonly #ports = new Map<string, DmaPort>();

  /** A tracker over bus_dma's backend (it translates CPU addresses through its pmap). */
  constructor(backend: DmaBackend) {
    this.#be = backend;
  }

  /** Watches `port`'s transfers (a device the kernel attached). */
  watch(port: DmaPort): void {
    port.monitor = this;
    this.#ports.set(port.name, port);
  }

  /** Stops watching every port. */
  unwatch(): void {
    for (const p of this.#ports.values()) if (p.monitor === this) p.monitor = null;
  }

  /** A summary for reports. */
  summary(): { violations: number; list: DmaViolation[] } {
    return { violations: this.violations, list: this.list.slice() };
  }

  /** bus_dma: `map` was loaded. */
  loaded(map: DmaMap): void {
    const ld = mapLoad(map);
    const dev: number[] = [], cpu: number[] = [];
    // Through an IOMMU the segments are I/O virtual addresses: the CPU uses
    // the RAM pieces mapped (or, bounced whole, the sources of the bounces).
    const translated = ld.iovaSize !== 0;
    for (let i = 0; i < ld.nsegs; i++) {
      const a = map.segAddr(i), n = map.segLen(i);
      dev.push(a, n);
      let bounced = translated;
      for (let r = 0; r < ld.nruns && !bounced; r++) {
        bounced = a >= ld.runs[2 * r]! && a < ld.runs[2 * r]! + ld.runs[2 * r + 1]!;
      }
      if (!bounced) cpu.push(a, n);
    }
    if (translated && ld.nbounce === 0) {
      for (let i = 0; i < ld.npieces; i++) cpu.push(ld.pieces[2 * i]!, ld.pieces[2 * i + 1]!);
    }
    for (let i = 0; i < ld.nbounce; i++) cpu.push(ld.bounce[4 * i + 1]!, ld.bounce[4 * i + 3]!);
    this.#maps.set(map, {
      map,
      device: map.tag.device,
      dev,
      cpu,
      dirty: true,
      deviceWrote: false,
      reported: new Set(),
    });
  }

  /** bus_dma: `map` was synced with `ops`. */
  synced(map: DmaMap, ops: number): void {
    const t = this.#maps.get(map);
    if (t === undefined) return;
    if (ops & BUS_DMASYNC_PREWRITE) t.dirty = false;
    if (ops & BUS_DMASYNC_POSTREAD) t.deviceWrote = false;
  }

  /** bus_dma: `map` is being unloaded. */
  unloaded(map: DmaMap): void {
    const t = this.#maps.get(map);
    const port = this.#ports.get(map.tag.device);
    if (t !== undefined && port !== undefined && port.inFlight > 0) {
      this.#report(
        t,
        "unload-in-flight",
        map.segAddr(0),
        `map ${map.name} unloaded while ${port.name} has ${port.inFlight} transfer(s) in flight`,
      );
    }
    this.#maps.delete(map);
  }

  /** bus_dma: a refused call that is a misuse (double unload, load of a loaded map, ...). */
  misuse(kind: DmaViolationKind, map: DmaMap, addr: number, message: string): void {
    const t = this.#maps.get(map);
    if (t !== undefined) this.#report(t, kind, addr, message);
    else this.#record(kind, map.name, map.tag.device, addr, message);
  }

  /** bus_dma at shutdown: what is still there leaked. */
  shutdown(maps: readonly DmaMap[], memory: readonly DmaMemory[]): void {
    for (const m of maps) {
      this.#record("leak", m.name, m.tag.device, 0, `map ${m.name} was never destroyed`);
    }
    for (const mem of memory) {
      this.#record(
        "leak",
        `DMA memory at kva 0x${mem.kva.toString(16)}`,
        mem.tag.device,
        mem.segs[0]?.[0] ?? 0,
        `${mem.size} bytes of DMA memory of tag ${mem.tag.name} were never freed`,
      );
    }
    this.unwatch();
  }

  /** The kernel's accessors: the CPU `op`s `len` bytes at kernel virtual `va`. */
  cpu(op: "read" | "write", va: number, len: number): void {
    if (this.#maps.size === 0 || len <= 0) return;
    const ps = this.#be.pageSize;
    for (let v = va, end = va + len; v < end;) {
      const pageEnd = (Math.floor(v / ps) + 1) * ps;
      const n = Math.min(pageEnd, end) - v;
      const pa = this.#be.kva.extract(v);
      if (pa >= 0) {
        for (const t of this.#maps.values()) {
          if (!overlaps(t.cpu, pa, n)) continue;
          if (op === "write") t.dirty = true;
          else if (t.deviceWrote) {
            this.#report(
              t,
              "no-postread",
              pa,
              `the CPU read 0x${pa.toString(16)} of map ${t.map.name}, which ${t.device} wrote, ` +
                `before a POSTREAD sync`,
            );
          }
        }
      }
      v += n;
    }
  }

  /** The port monitor: the device of `port` moved data. */
  transferred(port: DmaPort, op: "read" | "write", segs: ArrayLike<number>, nsegs: number): void {
    for (let i = 0; i < nsegs; i++) {
      const pa = segs[2 * i]!, n = segs[2 * i + 1]!;
      let covered = false;
      for (const t of this.#maps.values()) {
        if (t.device !== port.name || !overlaps(t.dev, pa, n)) continue;
        covered = true;
        if (op === "write") t.deviceWrote = true;
        else if (t.dirty) {
          this.#report(
            t,
            "no-prewrite",
            pa,
            `${port.name} read 0x${pa.toString(16)} of map ${t.map.name}, which the CPU ` +
              `wrote without a PREWRITE sync since`,
          );
        }
      }
      if (!covered) {
        this.#record(
          "outside-maps",
          "-",
          port.name,
          pa,
          `${port.name} ${op === "read" ? "read" : "wrote"} [0x${pa.toString(16)}, +${n}), ` +
            `which no loaded map of it covers`,
        );
      }
    }
  }

  #report(t: Tracked, kind: DmaViolationKind, addr: number, message: string): void {
    if (t.reported.has(kind)) return;
    t.reported.add(kind);
    this.#record(kind, t.map.name, t.device, addr, message);
  }

  #record(
    kind: DmaViolationKind,
    map: string,
    device: string,
    addr: number,
    message: string,
  ): void {
    this.violations++;
    if (this.list.length < VIOLATIONS_LISTED) {
      this.list.push(Object.freeze({ kind, map, device, addr, message }));
    }
  }
}

/** True when `[pa, pa + n)` overlaps one of the (address, length) pairs. */
function overlaps(ranges: readonly number[], pa: number, n: number): boolean {
  for (let i = 0; i < ranges.length; i += 2) {
    if (pa < ranges[i]! + ranges[i + 1]! && ranges[i]! < pa + n) return true;
  }
  return false;
}
