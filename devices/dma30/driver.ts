/**
 * The driver of the 30-bit frame-capture device (`model.ts`): captures
 * frames into DMA memory and checks every pixel; scans them out and checks
 * the device's hash.
 *
 * Theory. The device writes a whole frame as one segment that must start
 * on a 64 KiB boundary and end below 1 GiB. The tag says so (high
 * 1 GiB - 1, alignment 64 KiB, one segment of at most 16 MiB), and frame
 * buffers are DMA memory allocated from it in one physical segment
 * (bus_dmamem_alloc), so the device reaches them by construction and
 * nothing is ever bounced: the driver never loads kernel heap buffers (a
 * bounce page could not give the 64 KiB alignment anyway), and reserves no
 * bounce pool.
 *
 * A capture: load the frame's DMA memory into the map (bus_dmamap_load_raw);
 * sync PREREAD; write FB_ADDR, WIDTH, HEIGHT; note FRAME (the number the
 * device will draw); store the command. The model writes the frame inside
 * the store and raises its line; the driver lets the interrupt controller
 * deliver (the interrupt arriving: the handler collects and acknowledges
 * ISR); reads STATUS; syncs POSTREAD; checks that the pixel at (x, y) is
 * `capturePixel(x, y, frame)` for every pixel; unloads. A scanout is the
 * other direction (PREWRITE/POSTWRITE): the device reads the buffer and
 * its CHECKSUM must be the FNV-1a hash of the frame's bytes.
 *
 * With tags ignored, frame buffers come from a permissive tag: placed
 * anywhere, page-aligned only, so the device's port refuses those above
 * 1 GiB or off a 64 KiB boundary (a DMA fault, counted and never silent).
 * An address past the 32-bit FB_ADDR register is not programmed (an error).
 *
 * Data structures: one map; the frames handed out, in a set; a scratch
 * array grown to the largest frame checked. Cost of a capture: O(pixels).
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
  CAP_BYTES_PER_PIXEL,
  CAP_CMD_CAPTURE,
  CAP_CMD_RESET,
  CAP_CMD_SCANOUT,
  CAP_DMA,
  CAP_ID,
  CAP_MAX_DIM,
  CAP_REG_CHECKSUM,
  CAP_REG_CMD,
  CAP_REG_FB_ADDR,
  CAP_REG_FRAME,
  CAP_REG_HEIGHT,
  CAP_REG_STATUS,
  CAP_REG_WIDTH,
  CAP_STATUS_DMA_FAULT,
  CAP_STATUS_OK,
} from "./model.ts";
import type { DeviceDriver, DriverStats, TransferResult } from "../mod.ts";

/** A frame buffer: its geometry and the DMA memory behind it. */
export interface CaptureFrame {
  /** Pixels per row. */
  readonly width: number;
  /** Rows. */
  readonly height: number;
  /** Bytes of pixels (width x height x 4). */
  readonly bytes: number;
  /** The DMA memory (one physical segment). */
  readonly mem: DmaMemory;
}

const TWO32 = 4294967296;
const FAULTS_LOGGED = 4;
const MAX_FRAME = CAP_MAX_DIM * CAP_MAX_DIM * CAP_BYTES_PER_PIXEL;

/** Driver of the 30-bit frame-capture device. */
export class CaptureDriver implements DeviceDriver {
  /** Device instance name. */
  readonly name: string;
  /** Device type. */
  readonly type = "dma30";
  /** The tag its frame buffers obey. */
  readonly tag: DmaTag;
  /** True when the tag is the permissive one. */
  readonly ignoreTags: boolean;
  /** The map frames are loaded into (one command at a time). */
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
  readonly #frames = new Set<CaptureFrame>();
  #scratch = new Uint8Array(0);
  #isr = 0;
  #faultsSeen = 0;
  #detached = false;

  /** Attaches to the device `info`: tag, map, interrupt. */
  constructor(kernel: Kernel, info: DeviceInfo) {
    if (info.type !== this.type) {
      throw new KernelError("ENODEV", `device ${info.name} is a ${info.type}, not a dma30`);
    }
    this.#k = kernel;
    this.name = info.name;
    this.#base = info.base;
    this.#line = info.irq;
    const id = this.#rd(REG_ID);
    if (id !== CAP_ID) {
      throw new KernelError("ENODEV", `device ${info.name} answers ID ${describe(id)}`);
    }
    this.ignoreTags = kernel.ignoreTags;
    this.tag = this.ignoreTags
      ? new DmaTag(`${info.name} (tag ignored)`, { maxSize: MAX_FRAME })
      : new DmaTag(info.name, {
        highAddr: CAP_DMA.maxAddress,
        alignment: CAP_DMA.alignment,
        boundary: CAP_DMA.boundary,
        nSegments: CAP_DMA.maxSegments,
        maxSegSize: CAP_DMA.maxSegmentSize,
        maxSize: MAX_FRAME,
      });
    this.map = kernel.busDma.createMap(this.tag, MAX_FRAME, 1);
    try {
      kernel.machine.irq.establish(this.#line, this.#intr);
    } catch (e) {
      kernel.busDma.destroyMap(this.map);
      throw e;
    }
    this.#wr(CAP_REG_CMD, CAP_CMD_RESET);
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
   * A frame buffer of `width` x `height` pixels (each 1 to 2048) in DMA
   * memory the device reaches. Give it back with {@link freeFrame}; detach
   * frees what is left.
   */
  allocFrame(width: number, height: number): CaptureFrame {
    this.#alive();
    checkInteger("width", width, 1, CAP_MAX_DIM);
    checkInteger("height", height, 1, CAP_MAX_DIM);
    const bytes = width * height * CAP_BYTES_PER_PIXEL;
    const mem = this.#k.busDma.dmamemAlloc(this.tag, bytes, { nsegs: 1 });
    const frame: CaptureFrame = Object.freeze({ width, height, bytes, mem });
    this.#frames.add(frame);
    return frame;
  }

  /** Frees a frame buffer from {@link allocFrame}. */
  freeFrame(frame: CaptureFrame): void {
    this.#mine(frame);
    this.#k.busDma.dmamemFree(frame.mem);
    this.#frames.delete(frame);
  }

  /** Captures the next frame into `frame` and checks every pixel. */
  capture(frame: CaptureFrame): TransferResult {
    this.#alive();
    this.#mine(frame);
    const bd = this.#k.busDma, map = this.map;
    bd.loadMemory(map, frame.mem, frame.bytes);
    let result: TransferResult;
    try {
      bd.sync(map, BUS_DMASYNC_PREREAD);
      const number = this.#rd(CAP_REG_FRAME);
      result = this.#command(CAP_CMD_CAPTURE, frame);
      bd.sync(map, BUS_DMASYNC_POSTREAD);
      if (result === "ok") result = this.#verifyPixels(frame, number);
    } finally {
      bd.unload(map);
    }
    return result;
  }

  /** Has the device read `frame` and checks its hash against the frame's bytes. */
  scanout(frame: CaptureFrame): TransferResult {
    this.#alive();
    this.#mine(frame);
    const bd = this.#k.busDma, map = this.map;
    bd.loadMemory(map, frame.mem, frame.bytes);
    let result: TransferResult;
    try {
      bd.sync(map, BUS_DMASYNC_PREWRITE);
      result = this.#command(CAP_CMD_SCANOUT, frame);
      bd.sync(map, BUS_DMASYNC_POSTWRITE);
      if (result === "ok") {
        const data = this.#frameBytes(frame);
        if (this.#rd(CAP_REG_CHECKSUM) !== fnv1a(data)) result = this.#mismatch();
      }
    } finally {
      bd.unload(map);
    }
    return result;
  }

  /** Verifies the driver's invariants. */
  check(): void {
    const s = this.#stats;
    for (const [k, v] of Object.entries(s)) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`CaptureDriver.check: ${k} is ${v}`);
    }
    if (s.bouncedBytes !== 0) throw new Error("CaptureDriver.check: a frame was bounced");
    if (this.map.mapsize !== 0) throw new Error("CaptureDriver.check: map left loaded");
    if (this.#detached && this.#frames.size !== 0) {
      throw new Error("CaptureDriver.check: frames outlive the driver");
    }
  }

  /** Resets the device, removes the handler, frees the map and every frame. */
  detach(): void {
    if (this.#detached) return;
    this.#wr(CAP_REG_CMD, CAP_CMD_RESET);
    this.#k.machine.irq.disestablish(this.#line);
    this.#k.busDma.destroyMap(this.map);
    for (const f of this.#frames) this.#k.busDma.dmamemFree(f.mem);
    this.#frames.clear();
    this.#detached = true;
  }

  #alive(): void {
    if (this.#detached) throw new KernelError("ENXIO", `${this.name} is detached`);
  }

  #mine(frame: CaptureFrame): void {
    if (!this.#frames.has(frame)) {
      throw new KernelError(
        "EINVAL",
        `frame at kva ${describe(frame?.mem?.kva)} is not this driver's`,
      );
    }
  }

  /** Programs the loaded frame and runs `cmd`; counts the transfer or notes the failure. */
  #command(cmd: number, frame: CaptureFrame): TransferResult {
    const pa = this.map.segAddr(0);
    if (this.map.nsegs !== 1 || pa + frame.bytes > TWO32) {
      this.#error(`frame at 0x${pa.toString(16)} cannot be programmed into FB_ADDR`);
      return "error";
    }
    this.#wr(CAP_REG_FB_ADDR, pa);
    this.#wr(CAP_REG_WIDTH, frame.width);
    this.#wr(CAP_REG_HEIGHT, frame.height);
    this.#isr = 0;
    this.#wr(CAP_REG_CMD, cmd);
    // The device finished inside the store and raised its line; this is the
    // interrupt arriving.
    this.#k.machine.irq.deliver();
    const isr = this.#isr, status = this.#rd(CAP_REG_STATUS);
    if (isr & INT_ERROR) {
      const faults = this.#stats.faults;
      this.#noteFault();
      if (status === CAP_STATUS_DMA_FAULT && this.#stats.faults > faults) return "fault";
      this.#error(`command ${cmd} ended with status ${status}`);
      return "error";
    }
    if (!(isr & INT_DONE) || status !== CAP_STATUS_OK) {
      this.#error(`no completion interrupt for command ${cmd}`);
      return "error";
    }
    this.#stats.transfers++;
    this.#stats.bytes += frame.bytes;
    return "ok";
  }

  /** The frame's bytes, read through its kernel mapping into the scratch array. */
  #frameBytes(frame: CaptureFrame): Uint8Array {
    if (this.#scratch.length < frame.bytes) this.#scratch = new Uint8Array(frame.bytes);
    const data = this.#scratch.subarray(0, frame.bytes);
    this.#k.pmap.read(frame.mem.kva, data);
    return data;
  }

  /** Every pixel must be the device's pattern for frame `number`. */
  #verifyPixels(frame: CaptureFrame, number: number): TransferResult {
    const data = this.#frameBytes(frame);
    const f = number & 0xff;
    let o = 0;
    for (let y = 0; y < frame.height; y++) {
      const yb = y & 0xff;
      for (let x = 0; x < frame.width; x++, o += 4) {
        if (
          data[o] !== (x & 0xff) || data[o + 1] !== yb || data[o + 2] !== f || data[o + 3] !== 0xff
        ) {
          return this.#mismatch();
        }
      }
    }
    return "ok";
  }

  #mismatch(): TransferResult {
    this.#stats.mismatches++;
    return "mismatch";
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
