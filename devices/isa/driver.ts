/**
 * The driver of the ISA DMA device (`model.ts`): plays kernel buffers to
 * the device, records into them and fills them, through bus_dma.
 *
 * Theory. The 8237 channel takes one contiguous segment below 16 MiB that
 * never crosses a 64 KiB boundary, at most 64 KiB long: that is the tag,
 * made from the device's limits. The channel has one address register, so
 * the map takes one segment, and it is made with `bounceBuffer`, as NetBSD's
 * isa_dmamap_create gives ISA maps a bounce buffer: a kernel buffer whose
 * pages the device cannot use in place as one segment is copied whole
 * through the tag's bounce reservation (below 16 MiB, one segment). DMA
 * memory from {@link IsaDriver.allocBuffer} is reachable by construction and
 * loads with no copy.
 *
 * A transfer: load the map; sync (PREWRITE before the device reads memory,
 * PREREAD before it writes); write the segment's address (both halves of
 * ADDR) and length to the registers (and PATTERN), store the command and
 * wait for its interrupt; read STATUS; sync POSTWRITE or POSTREAD; check
 * the data; unload. The driver checks every transfer: after PLAY the
 * device's CHECKSUM must be the FNV-1a hash of the buffer's bytes; after
 * RECORD the buffer must hold what the device last played (the driver
 * mirrors the device's FIFO); after FILL, the pattern.
 *
 * With tags ignored the driver uses a permissive tag and a map of one
 * segment with no bounce buffer: buffers above 16 MiB or across 64 KiB go
 * to the device as they are and the device's port refuses them (a DMA
 * fault, counted and never silent); a buffer whose pages are not contiguous
 * cannot be one segment and its load is refused with EFBIG.
 *
 * Data structures: one map, a 64 KiB scratch array and the 64 KiB FIFO
 * mirror, all made at attach. Cost of a transfer: O(pages) for the load,
 * O(bytes) for the bounce copy and the check.
 *
 * @module
 */

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
  ISA_ID,
  ISA_MAX_TRANSFER,
  ISA_REG_ADDR,
  ISA_REG_ADDR_HI,
  ISA_REG_CHECKSUM,
  ISA_REG_CMD,
  ISA_REG_COUNT,
  ISA_REG_PATTERN,
  ISA_REG_STATUS,
  ISA_STATUS_DMA_FAULT,
  ISA_STATUS_OK,
} from "./reg.ts";
import { DriverBase, type DriverSpec, type TransferResult } from "../driver.ts";
import type { DriverKernel } from "../kernel_if.ts";

/** What a transfer asks of the device: read memory, write it, or fill it with a pattern. */
export type IsaCommand = "play" | "record" | "fill";

// The map's bounce buffer: one 64 KiB load at any offset in its first page.
const SPEC: DriverSpec = { type: "isadma", id: ISA_ID, bouncePages: ISA_MAX_TRANSFER / 4096 + 1 };

/** Driver of an 8237-style ISA DMA device. */
export class IsaDriver extends DriverBase {
  /** The map every transfer goes through (one transfer at a time). */
  readonly map: DmaMap;

  readonly #fifo = new Uint8Array(ISA_MAX_TRANSFER);
  readonly #scratch = new Uint8Array(ISA_MAX_TRANSFER);

  /** Attaches to the device `info`: tag, map, interrupt. */
  constructor(kernel: DriverKernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    try {
      this.map = this.createMap(this.tag, ISA_MAX_TRANSFER, 1, {
        bounceBuffer: !this.ignoreTags,
        name: `${info.name} channel`,
      });
      this.establish();
    } catch (e) {
      this.abandon(e);
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
    return this.allocMemory(this.tag, size, { nsegs: 1 });
  }

  /** Frees DMA memory from {@link allocBuffer}. */
  freeBuffer(mem: DmaMemory): void {
    this.freeMemory(mem);
  }

  /**
   * Runs `cmd` on the `len` bytes (1 to 64 KiB) of the kernel buffer at
   * `va`: `play` sends them to the device, `record` fills them with what it
   * last played, `fill` with `(pattern + i) & 0xff`. Resolves to what the
   * transfer came to; rejects (changing nothing) when the arguments are bad
   * or bus_dma refuses the load (EFBIG, ENOMEM, EFAULT).
   */
  transfer(cmd: IsaCommand, va: number, len: number, pattern?: number): Promise<TransferResult> {
    if (pattern === undefined) pattern = 0;
    let code: number;
    try {
      code = this.#args(cmd, len, pattern);
      checkInteger("va", va);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(async () => {
      await this.load(this.map, { kind: "kva", va, len });
      return this.#run(code, va, len, pattern);
    });
  }

  /** {@link transfer} on the first `len` bytes of DMA memory from {@link allocBuffer}. */
  transferMemory(
    cmd: IsaCommand,
    mem: DmaMemory,
    len?: number,
    pattern?: number,
  ): Promise<TransferResult> {
    if (len === undefined) len = mem?.size;
    if (pattern === undefined) pattern = 0;
    let code: number;
    try {
      if (!this.ownsMemory(mem)) {
        throw new KernelError(
          "EINVAL",
          `DMA memory at kva ${describe(mem?.kva)} is not this driver's`,
        );
      }
      code = this.#args(cmd, len, pattern);
      checkInteger("len", len, 1, mem.size);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(() => {
      this.busDma.loadMemory(this.map, mem, len);
      return this.#run(code, mem.kva, len, pattern);
    });
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
  }

  /** Resets the device. */
  protected quiesce(): void {
    this.wr(ISA_REG_CMD, ISA_CMD_RESET);
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
  async #run(code: number, va: number, len: number, pattern: number): Promise<TransferResult> {
    const map = this.map, s = this.counters;
    const toDevice = code === ISA_CMD_PLAY;
    const bounced = map.bouncedBytes;
    let result: TransferResult = "ok";
    try {
      this.sync(map, toDevice ? BUS_DMASYNC_PREWRITE : BUS_DMASYNC_PREREAD);
      const breach = this.breach(map.segs, map.nsegs);
      this.wr64(ISA_REG_ADDR, ISA_REG_ADDR_HI, map.segAddr(0));
      this.wr(ISA_REG_COUNT, len);
      if (code === ISA_CMD_FILL) this.wr(ISA_REG_PATTERN, pattern);
      const status = await this.#command(code);
      if (status !== ISA_STATUS_OK) {
        result = status === ISA_STATUS_DMA_FAULT ? "fault" : "error";
        if (result === "error") this.error(`command ${code} ended with status ${status}`);
      }
      if (result === "ok") {
        s.transfers++;
        s.bytes += len;
        s.bouncedBytes += bounced;
      }
      this.sync(map, toDevice ? BUS_DMASYNC_POSTWRITE : BUS_DMASYNC_POSTREAD);
      if (result === "ok") result = this.#verify(code, va, len, pattern);
      this.account(result, breach);
    } finally {
      this.busDma.unload(map);
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
    this.kernel.read(va, data);
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

  /** Stores a command, waits for its interrupt, returns STATUS (notes a fault). */
  async #command(code: number): Promise<number> {
    const isr = await this.command(ISA_REG_CMD, code);
    const status = this.rd(ISA_REG_STATUS);
    if (isr & INT_ERROR) this.noteFault();
    else if (!(isr & INT_DONE)) {
      this.error(`no completion interrupt for command ${code}`);
      return -1;
    }
    return status;
  }
}
