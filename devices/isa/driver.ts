/**
 * The driver of the ISA DMA device (`model.ts`): plays kernel buffers to
 * the device, records into them and fills them, through bus_dma.
 *
 * Theory. The 8237 channel takes one contiguous segment below 16 MiB that
 * never crosses a 64 KiB boundary, at most 64 KiB long. The tag says so
 * (high 16 MiB - 1, boundary 64 KiB, one segment of at most 64 KiB), and
 * the map is created with its own contiguous bounce buffer, as NetBSD's
 * isa_dmamap_create does: a kernel buffer whose pages the device cannot use
 * in place as one segment is copied through it whole; a one-page buffer out
 * of reach may instead take a page of the tag's bounce pool, which the
 * driver reserves when RAM extends past 16 MiB. DMA memory from
 * {@link IsaDriver.allocBuffer} is reachable by construction and loads with
 * no copy.
 *
 * A transfer: load the map; sync (PREWRITE before the device reads memory,
 * PREREAD before it writes); write the segment's address and length to
 * ADDR and COUNT (and PATTERN), store the command; the model completes
 * inside the store and raises its line, and the driver then lets the
 * interrupt controller deliver (the interrupt arriving: the handler reads
 * ISR and acknowledges it); read STATUS; sync POSTWRITE or POSTREAD;
 * unload. The driver checks every transfer: after PLAY the device's
 * CHECKSUM must be the FNV-1a hash of the buffer's bytes; after RECORD the
 * buffer must hold what the device last played (the driver mirrors the
 * device's FIFO); after FILL, the pattern.
 *
 * With tags ignored the driver uses a permissive tag and a map with no
 * bounce buffer: buffers above 16 MiB or across 64 KiB go to the device as
 * they are and the device's port refuses them (a DMA fault, counted and
 * never silent). What the channel cannot be told at all is not programmed
 * and counts as an error: a load of more than one segment (the 8237 does
 * not chain; NetBSD's isa_dmastart would panic), or an address that does
 * not fit the 32-bit ADDR register (the device would wrap it).
 *
 * Data structures: one map, a 64 KiB scratch array and the 64 KiB FIFO
 * mirror, all made at attach; the DMA memory handed out, in a set. Cost of
 * a transfer: O(pages) for the load, O(bytes) for the bounce copy and the
 * check.
 *
 * @module
 */

import type { Kernel } from "../../boot/kernel.ts";
import {
  BUS_DMASYNC_POSTREAD,
  BUS_DMASYNC_POSTWRITE,
  BUS_DMASYNC_PREREAD,
  BUS_DMASYNC_PREWRITE,
  type DmaMap,
  type DmaMemory,
  DmaTag,
} from "../../mm/bus_dma.ts";
import { checkInteger, describe, KernelError } from "../../mm/errors.ts";
import {
  type DeviceInfo,
  FAULT_DECODE,
  FAULT_NONE,
  fnv1a,
  INT_DONE,
  INT_ERROR,
  REG_FAULT_ADDR_HI,
  REG_FAULT_ADDR_LO,
  REG_FAULT_COUNT,
  REG_FAULT_KIND,
  REG_FAULT_LEN,
  REG_ID,
  REG_IER,
  REG_ISR,
} from "../../machine/mod.ts";
import {
  ISA_CMD_FILL,
  ISA_CMD_PLAY,
  ISA_CMD_RECORD,
  ISA_CMD_RESET,
  ISA_DMA,
  ISA_ID,
  ISA_MAX_TRANSFER,
  ISA_REG_ADDR,
  ISA_REG_CHECKSUM,
  ISA_REG_CMD,
  ISA_REG_COUNT,
  ISA_REG_PATTERN,
  ISA_REG_STATUS,
  ISA_STATUS_DMA_FAULT,
  ISA_STATUS_OK,
} from "./model.ts";
import type { DeviceDriver, DriverStats, TransferResult } from "../mod.ts";

/** What a transfer asks of the device: read memory, write it, or fill it with a pattern. */
export type IsaCommand = "play" | "record" | "fill";

/** Bounce pool pages the driver reserves below 16 MiB when RAM goes past it. */
export const ISA_BOUNCE_PAGES = 16;

const PAGE = 4096;
const TWO32 = 4294967296;
const FAULTS_LOGGED = 4;

/** Driver of an 8237-style ISA DMA device. */
export class IsaDriver implements DeviceDriver {
  /** Device instance name. */
  readonly name: string;
  /** Device type. */
  readonly type = "isadma";
  /** The tag its transfers obey. */
  readonly tag: DmaTag;
  /** True when the tag is the permissive one. */
  readonly ignoreTags: boolean;
  /** The map every transfer goes through (one transfer at a time). */
  readonly map: DmaMap;
  /** The last fault the device described. */
  lastFault: string | null = null;

  readonly #k: Kernel;
  readonly #base: number;
  readonly #line: number;
  readonly #stats: DriverStats = {
    transfers: 0,
    bytes: 0,
    bouncedBytes: 0,
    faults: 0,
    mismatches: 0,
    errors: 0,
  };
  readonly #fifo = new Uint8Array(ISA_MAX_TRANSFER);
  readonly #scratch = new Uint8Array(ISA_MAX_TRANSFER);
  readonly #memory = new Set<DmaMemory>();
  #isr = 0;
  #faultsSeen = 0;
  #detached = false;

  /** Attaches to the device `info` of `kernel`'s machine: tag, bounce pool, map, interrupt. */
  constructor(kernel: Kernel, info: DeviceInfo) {
    if (info.type !== this.type) {
      throw new KernelError("ENODEV", `device ${info.name} is a ${info.type}, not an isadma`);
    }
    this.#k = kernel;
    this.name = info.name;
    this.#base = info.base;
    this.#line = info.irq;
    const id = this.#rd(REG_ID);
    if (id !== ISA_ID) {
      throw new KernelError("ENODEV", `device ${info.name} answers ID ${describe(id)}`);
    }
    this.ignoreTags = kernel.ignoreTags;
    this.tag = this.ignoreTags
      ? new DmaTag(`${info.name} (tag ignored)`, { maxSize: ISA_MAX_TRANSFER })
      : new DmaTag(info.name, {
        highAddr: ISA_DMA.maxAddress,
        alignment: ISA_DMA.alignment,
        boundary: ISA_DMA.boundary,
        nSegments: ISA_DMA.maxSegments,
        maxSegSize: ISA_DMA.maxSegmentSize,
        maxSize: ISA_MAX_TRANSFER,
      });
    const bd = kernel.busDma;
    if (!this.ignoreTags && bd.mightBounce(this.tag)) bd.reserveBounce(this.tag, ISA_BOUNCE_PAGES);
    this.map = this.ignoreTags
      ? bd.createMap(this.tag, ISA_MAX_TRANSFER, ISA_MAX_TRANSFER / PAGE + 1)
      : bd.createMap(this.tag, ISA_MAX_TRANSFER, 1, { bounceBuffer: true });
    try {
      kernel.machine.irq.establish(this.#line, this.#intr);
    } catch (e) {
      bd.destroyMap(this.map);
      throw e;
    }
    this.#wr(ISA_REG_CMD, ISA_CMD_RESET);
    this.#wr(REG_IER, INT_DONE | INT_ERROR);
    this.#faultsSeen = this.#rd(REG_FAULT_COUNT);
  }

  /** True once detached. */
  get detached(): boolean {
    return this.#detached;
  }

  /** A copy of the counters. */
  stats(): DriverStats {
    return { ...this.#stats };
  }

  /**
   * DMA memory the device reaches as one segment (bus_dmamem_alloc):
   * `size` bytes (1 to 64 KiB). Give it back with {@link freeBuffer};
   * detach frees what is left.
   */
  allocBuffer(size: number): DmaMemory {
    this.#alive();
    checkInteger("size", size, 1, ISA_MAX_TRANSFER);
    const mem = this.#k.busDma.dmamemAlloc(this.tag, size, { nsegs: 1 });
    this.#memory.add(mem);
    return mem;
  }

  /** Frees DMA memory from {@link allocBuffer}. */
  freeBuffer(mem: DmaMemory): void {
    if (!this.#memory.has(mem)) {
      throw new KernelError(
        "BADFREE",
        `DMA memory at kva ${describe(mem?.kva)} is not this driver's`,
      );
    }
    this.#k.busDma.dmamemFree(mem);
    this.#memory.delete(mem);
  }

  /**
   * Runs `cmd` on the `len` bytes (1 to 64 KiB) of the kernel buffer at
   * `va`: `play` sends them to the device, `record` fills them with what it
   * last played, `fill` with `(pattern + i) & 0xff`. Returns what the
   * transfer came to; throws (changing nothing) when the arguments are bad
   * or bus_dma refuses the load (EFBIG, ENOMEM, EFAULT).
   */
  transfer(cmd: IsaCommand, va: number, len: number, pattern = 0): TransferResult {
    const code = this.#args(cmd, len, pattern);
    checkInteger("va", va);
    this.#k.busDma.load(this.map, va, len);
    return this.#run(code, va, len, pattern);
  }

  /** {@link transfer} on the first `len` bytes of DMA memory from {@link allocBuffer}. */
  transferMemory(
    cmd: IsaCommand,
    mem: DmaMemory,
    len: number = mem.size,
    pattern = 0,
  ): TransferResult {
    const code = this.#args(cmd, len, pattern);
    if (!this.#memory.has(mem)) {
      throw new KernelError(
        "EINVAL",
        `DMA memory at kva ${describe(mem?.kva)} is not this driver's`,
      );
    }
    checkInteger("len", len, 1, mem.size);
    this.#k.busDma.loadMemory(this.map, mem, len);
    return this.#run(code, mem.kva, len, pattern);
  }

  /** Verifies the driver's invariants. */
  check(): void {
    const s = this.#stats;
    for (const [k, v] of Object.entries(s)) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`IsaDriver.check: ${k} is ${v}`);
    }
    if (s.bouncedBytes > s.bytes) {
      throw new Error("IsaDriver.check: more bytes bounced than moved");
    }
    if (this.map.mapsize !== 0) throw new Error("IsaDriver.check: map left loaded");
    if (!this.#detached && this.map.destroyed) throw new Error("IsaDriver.check: map destroyed");
  }

  /** Resets the device, removes the handler, frees the map and all DMA memory. */
  detach(): void {
    if (this.#detached) return;
    this.#wr(ISA_REG_CMD, ISA_CMD_RESET);
    this.#k.machine.irq.disestablish(this.#line);
    this.#k.busDma.destroyMap(this.map);
    for (const mem of this.#memory) this.#k.busDma.dmamemFree(mem);
    this.#memory.clear();
    this.#detached = true;
  }

  #alive(): void {
    if (this.#detached) throw new KernelError("ENXIO", `${this.name} is detached`);
  }

  /** Checks the arguments every transfer shares; returns the command code. */
  #args(cmd: IsaCommand, len: number, pattern: number): number {
    this.#alive();
    const code = cmd === "play"
      ? ISA_CMD_PLAY
      : cmd === "record"
      ? ISA_CMD_RECORD
      : cmd === "fill"
      ? ISA_CMD_FILL
      : -1;
    if (code < 0) {
      throw new KernelError("EINVAL", `cmd must be play, record or fill, got ${describe(cmd)}`);
    }
    checkInteger("len", len, 1, ISA_MAX_TRANSFER);
    checkInteger("pattern", pattern, 0, 255);
    return code;
  }

  /** The transfer on the loaded map; unloads it whatever happens. */
  #run(code: number, va: number, len: number, pattern: number): TransferResult {
    const bd = this.#k.busDma, map = this.map, s = this.#stats;
    const toDevice = code === ISA_CMD_PLAY;
    const bounced = map.bouncedBytes;
    let result: TransferResult = "ok";
    try {
      bd.sync(map, toDevice ? BUS_DMASYNC_PREWRITE : BUS_DMASYNC_PREREAD);
      const pa = map.segAddr(0);
      if (map.nsegs !== 1) {
        this.#error(`a ${len}-byte buffer loaded as ${map.nsegs} segments; the channel takes one`);
        result = "error";
      } else if (pa + len > TWO32) {
        this.#error(`segment 0x${pa.toString(16)}+${len} does not fit the 32-bit ADDR register`);
        result = "error";
      } else {
        this.#wr(ISA_REG_ADDR, pa);
        this.#wr(ISA_REG_COUNT, len);
        if (code === ISA_CMD_FILL) this.#wr(ISA_REG_PATTERN, pattern);
        const status = this.#command(code);
        if (status !== ISA_STATUS_OK) {
          result = status === ISA_STATUS_DMA_FAULT ? "fault" : "error";
          if (result === "error") this.#error(`command ${code} ended with status ${status}`);
        }
      }
      if (result === "ok") {
        s.transfers++;
        s.bytes += len;
        s.bouncedBytes += bounced;
      }
      bd.sync(map, toDevice ? BUS_DMASYNC_POSTWRITE : BUS_DMASYNC_POSTREAD);
      if (result === "ok") result = this.#verify(code, va, len, pattern);
    } finally {
      bd.unload(map);
    }
    if (result === "mismatch") s.mismatches++;
    return result;
  }

  /**
   * After PLAY the device's checksum is the hash of the buffer (whose bytes
   * become the FIFO); after RECORD the buffer holds the FIFO's first bytes;
   * after FILL, the pattern.
   */
  #verify(code: number, va: number, len: number, pattern: number): TransferResult {
    const data = this.#scratch.subarray(0, len), fifo = this.#fifo;
    this.#k.pmap.read(va, data);
    if (code === ISA_CMD_PLAY) {
      fifo.set(data, 0);
      return this.#rd(ISA_REG_CHECKSUM) === fnv1a(data) ? "ok" : "mismatch";
    }
    for (let j = 0; j < len; j++) {
      const want = code === ISA_CMD_RECORD ? fifo[j] : (pattern + j) & 0xff;
      if (data[j] !== want) return "mismatch";
    }
    return "ok";
  }

  /** Stores a command, takes its interrupt, returns STATUS (notes a fault). */
  #command(code: number): number {
    this.#isr = 0;
    this.#wr(ISA_REG_CMD, code);
    // The model completed inside the store and raised its line; this is the
    // interrupt arriving: the controller calls the handler below.
    this.#k.machine.irq.deliver();
    const isr = this.#isr;
    const status = this.#rd(ISA_REG_STATUS);
    if (isr & INT_ERROR) this.#noteFault();
    else if (!(isr & INT_DONE)) {
      this.#error(`no completion interrupt for command ${code}`);
      return -1;
    }
    return status;
  }

  /** The interrupt handler: take the causes, acknowledge them. */
  readonly #intr = (): void => {
    const isr = this.#rd(REG_ISR);
    this.#isr |= isr;
    this.#wr(REG_ISR, isr);
  };

  /** Reads the fault registers after an error interrupt, counts and clears the fault. */
  #noteFault(): void {
    const count = this.#rd(REG_FAULT_COUNT);
    const kind = this.#rd(REG_FAULT_KIND);
    if (kind !== FAULT_NONE) {
      const addr = this.#rd(REG_FAULT_ADDR_HI) * TWO32 + this.#rd(REG_FAULT_ADDR_LO);
      this.lastFault = `${kind === FAULT_DECODE ? "decode" : "access"} fault at 0x${
        addr.toString(16)
      } (${this.#rd(REG_FAULT_LEN)} bytes)`;
      this.#wr(REG_FAULT_KIND, 0);
    }
    const seen = this.#stats.faults;
    this.#stats.faults += (count - this.#faultsSeen) >>> 0;
    this.#faultsSeen = count;
    if (seen < FAULTS_LOGGED && this.#stats.faults > seen) {
      this.#k.log(`${this.name}: DMA ${this.lastFault ?? "fault"}`);
    }
  }

  #error(what: string): void {
    if (this.#stats.errors++ < FAULTS_LOGGED) this.#k.log(`${this.name}: ${what}`);
  }

  #rd(off: number): number {
    return this.#k.machine.bus.read32(this.#base + off);
  }

  #wr(off: number, v: number): void {
    this.#k.machine.bus.write32(this.#base + off, v);
  }
}
