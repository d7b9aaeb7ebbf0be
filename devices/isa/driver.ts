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
} from "../../mm/bus_dma.ts";
import { checkInteger, describe, KernelError } from "../../mm/errors.ts";
import { type DeviceInfo, fnv1a, INT_DONE, INT_ERROR } from "../../machine/mod.ts";
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
import { DriverBase, type DriverSpec, type TransferResult, TWO32 } from "../driver.ts";

/** What a transfer asks of the device: read memory, write it, or fill it with a pattern. */
export type IsaCommand = "play" | "record" | "fill";

/** Bounce pool pages the driver reserves below 16 MiB when RAM goes past it. */
export const ISA_BOUNCE_PAGES = 16;

const PAGE = 4096;

const SPEC: DriverSpec = {
  type: "isadma",
  article: "an",
  id: ISA_ID,
  dma: ISA_DMA,
  maxSize: ISA_MAX_TRANSFER,
};

/** Driver of an 8237-style ISA DMA device. */
export class IsaDriver extends DriverBase {
  /** The map every transfer goes through (one transfer at a time). */
  readonly map: DmaMap;

  readonly #fifo = new Uint8Array(ISA_MAX_TRANSFER);
  readonly #scratch = new Uint8Array(ISA_MAX_TRANSFER);
  readonly #memory = new Set<DmaMemory>();

  /** Attaches to the device `info` of `kernel`'s machine: tag, bounce pool, map, interrupt. */
  constructor(kernel: Kernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    const bd = kernel.busDma;
    if (!this.ignoreTags && bd.mightBounce(this.tag)) bd.reserveBounce(this.tag, ISA_BOUNCE_PAGES);
    this.map = this.ignoreTags
      ? bd.createMap(this.tag, ISA_MAX_TRANSFER, ISA_MAX_TRANSFER / PAGE + 1)
      : bd.createMap(this.tag, ISA_MAX_TRANSFER, 1, { bounceBuffer: true });
    try {
      this.establish();
    } catch (e) {
      bd.destroyMap(this.map);
      throw e;
    }
    this.wr(ISA_REG_CMD, ISA_CMD_RESET);
    this.enableInterrupts();
  }

  /**
   * DMA memory the device reaches as one segment (bus_dmamem_alloc):
   * `size` bytes (1 to 64 KiB). Give it back with {@link freeBuffer};
   * detach frees what is left.
   */
  allocBuffer(size: number): DmaMemory {
    this.assertAttached();
    checkInteger("size", size, 1, ISA_MAX_TRANSFER);
    const mem = this.kernel.busDma.dmamemAlloc(this.tag, size, { nsegs: 1 });
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
    this.kernel.busDma.dmamemFree(mem);
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
    this.kernel.busDma.load(this.map, va, len);
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
    this.kernel.busDma.loadMemory(this.map, mem, len);
    return this.#run(code, mem.kva, len, pattern);
  }

  /** Verifies the driver's invariants. */
  check(): void {
    this.checkCounters("IsaDriver");
    const s = this.counters;
    if (s.bouncedBytes > s.bytes) {
      throw new KernelError("CORRUPT", "IsaDriver.check: more bytes bounced than moved");
    }
    if (this.map.mapsize !== 0) {
      throw new KernelError("CORRUPT", "IsaDriver.check: map left loaded");
    }
    if (!this.detached && this.map.destroyed) {
      throw new KernelError("CORRUPT", "IsaDriver.check: map destroyed");
    }
  }

  /** Resets the device. */
  protected quiesce(): void {
    this.wr(ISA_REG_CMD, ISA_CMD_RESET);
  }

  /** Frees the map and all DMA memory. */
  protected release(): void {
    this.kernel.busDma.destroyMap(this.map);
    for (const mem of this.#memory) this.kernel.busDma.dmamemFree(mem);
    this.#memory.clear();
  }

  /** Checks the arguments every transfer shares; returns the command code. */
  #args(cmd: IsaCommand, len: number, pattern: number): number {
    this.assertAttached();
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
    const bd = this.kernel.busDma, map = this.map, s = this.counters;
    const toDevice = code === ISA_CMD_PLAY;
    const bounced = map.bouncedBytes;
    let result: TransferResult = "ok";
    try {
      bd.sync(map, toDevice ? BUS_DMASYNC_PREWRITE : BUS_DMASYNC_PREREAD);
      const pa = map.segAddr(0);
      if (map.nsegs !== 1) {
        this.error(`a ${len}-byte buffer loaded as ${map.nsegs} segments; the channel takes one`);
        result = "error";
      } else if (pa + len > TWO32) {
        this.error(`segment 0x${pa.toString(16)}+${len} does not fit the 32-bit ADDR register`);
        result = "error";
      } else {
        this.wr(ISA_REG_ADDR, pa);
        this.wr(ISA_REG_COUNT, len);
        if (code === ISA_CMD_FILL) this.wr(ISA_REG_PATTERN, pattern);
        const status = this.#command(code);
        if (status !== ISA_STATUS_OK) {
          result = status === ISA_STATUS_DMA_FAULT ? "fault" : "error";
          if (result === "error") this.error(`command ${code} ended with status ${status}`);
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
    this.kernel.pmap.read(va, data);
    if (code === ISA_CMD_PLAY) {
      fifo.set(data, 0);
      return this.rd(ISA_REG_CHECKSUM) === fnv1a(data) ? "ok" : "mismatch";
    }
    for (let j = 0; j < len; j++) {
      const want = code === ISA_CMD_RECORD ? fifo[j] : (pattern + j) & 0xff;
      if (data[j] !== want) return "mismatch";
    }
    return "ok";
  }

  /** Stores a command, takes its interrupt, returns STATUS (notes a fault). */
  #command(code: number): number {
    const isr = this.storeAndDeliver(ISA_REG_CMD, code);
    const status = this.rd(ISA_REG_STATUS);
    if (isr & INT_ERROR) this.noteFault();
    else if (!(isr & INT_DONE)) {
      this.error(`no completion interrupt for command ${code}`);
      return -1;
    }
    return status;
  }
}
