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
 * nothing is ever bounced: the driver never loads kernel heap buffers, and
 * its tag reserves no bounce pages.
 *
 * A capture: load the frame's DMA memory into the map (bus_dmamap_load_raw);
 * sync PREREAD; write FB_ADDR (both halves), WIDTH, HEIGHT; note FRAME (the
 * number the device will draw); store the command and wait for its
 * interrupt; read STATUS; sync POSTREAD; check that the pixel at (x, y) is
 * `capturePixel(x, y, frame)` for every pixel; unload. A scanout is the
 * other direction (PREWRITE/POSTWRITE): the device reads the buffer and
 * its CHECKSUM must be the FNV-1a hash of the frame's bytes.
 *
 * With tags ignored, frame buffers come from a permissive tag: placed
 * anywhere, page-aligned only, so the device's port refuses those above
 * 1 GiB or off a 64 KiB boundary (a DMA fault, counted and never silent).
 *
 * Data structures: one map; the frames handed out, in a set; a scratch
 * array grown to the largest frame checked. Cost of a capture: O(pixels).
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
  CAP_BYTES_PER_PIXEL,
  CAP_CMD_CAPTURE,
  CAP_CMD_RESET,
  CAP_CMD_SCANOUT,
  CAP_ID,
  CAP_MAX_DIM,
  CAP_REG_CHECKSUM,
  CAP_REG_CMD,
  CAP_REG_FB_ADDR,
  CAP_REG_FB_ADDR_HI,
  CAP_REG_FRAME,
  CAP_REG_HEIGHT,
  CAP_REG_STATUS,
  CAP_REG_WIDTH,
  CAP_STATUS_DMA_FAULT,
  CAP_STATUS_OK,
} from "./reg.ts";
import { DriverBase, type DriverSpec, type TransferResult } from "../driver.ts";
import type { DriverKernel } from "../kernel_if.ts";

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

const MAX_FRAME = CAP_MAX_DIM * CAP_MAX_DIM * CAP_BYTES_PER_PIXEL;

const SPEC: DriverSpec = { type: "dma30", id: CAP_ID, bouncePages: 0 };

/** Driver of the 30-bit frame-capture device. */
export class CaptureDriver extends DriverBase {
  /** The map frames are loaded into (one command at a time). */
  readonly map: DmaMap;

  readonly #frames = new Set<CaptureFrame>();
  #scratch = new Uint8Array(0);

  /** Attaches to the device `info`: tag, map, interrupt. */
  constructor(kernel: DriverKernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    try {
      this.map = this.createMap(this.tag, MAX_FRAME, 1, { name: `${info.name} frame` });
      this.establish();
    } catch (e) {
      this.abandon(e);
    }
    this.wr(CAP_REG_CMD, CAP_CMD_RESET);
    this.enableInterrupts();
  }

  /**
   * A frame buffer of `width` x `height` pixels (each 1 to 2048) in DMA
   * memory the device reaches. Give it back with {@link freeFrame}; detach
   * frees what is left.
   */
  allocFrame(width: number, height: number): CaptureFrame {
    this.assertAttached();
    checkInteger("width", width, 1, CAP_MAX_DIM);
    checkInteger("height", height, 1, CAP_MAX_DIM);
    const bytes = width * height * CAP_BYTES_PER_PIXEL;
    const mem = this.allocMemory(this.tag, bytes, { nsegs: 1 });
    const frame: CaptureFrame = Object.freeze({ width, height, bytes, mem });
    this.#frames.add(frame);
    return frame;
  }

  /** Frees a frame buffer from {@link allocFrame}. */
  freeFrame(frame: CaptureFrame): void {
    this.#mine(frame);
    this.freeMemory(frame.mem);
    this.#frames.delete(frame);
  }

  /** Captures the next frame into `frame` and checks every pixel. */
  capture(frame: CaptureFrame): Promise<TransferResult> {
    return this.#run(frame, CAP_CMD_CAPTURE);
  }

  /** Has the device read `frame` and checks its hash against the frame's bytes. */
  scanout(frame: CaptureFrame): Promise<TransferResult> {
    return this.#run(frame, CAP_CMD_SCANOUT);
  }

  /** Verifies the driver's invariants. */
  check(): void {
    this.checkCounters("CaptureDriver");
    if (this.counters.bouncedBytes !== 0) {
      throw new KernelError("CORRUPT", "CaptureDriver.check: a frame was bounced");
    }
    if (this.map.mapsize !== 0) {
      throw new KernelError("CORRUPT", "CaptureDriver.check: map left loaded");
    }
    if (this.detached && this.#frames.size !== 0) {
      throw new KernelError("CORRUPT", "CaptureDriver.check: frames outlive the driver");
    }
  }

  /** Resets the device. */
  protected quiesce(): void {
    this.wr(CAP_REG_CMD, CAP_CMD_RESET);
  }

  /** Forgets the frames (their memory goes back with the driver's). */
  protected override release(): void {
    this.#frames.clear();
  }

  /**
   * One command on `frame`, refused at once for a frame not this driver's:
   * load the frame's memory, sync for the direction, run, sync back, check
   * (the pixels of a capture, the hash of a scanout), unload.
   */
  #run(frame: CaptureFrame, cmd: number): Promise<TransferResult> {
    try {
      this.assertAttached();
      this.#mine(frame);
    } catch (e) {
      return Promise.reject(e);
    }
    const capture = cmd === CAP_CMD_CAPTURE;
    return this.serialize(async () => {
      const map = this.map;
      this.busDma.loadMemory(map, frame.mem, frame.bytes);
      let result: TransferResult;
      try {
        this.sync(map, capture ? BUS_DMASYNC_PREREAD : BUS_DMASYNC_PREWRITE);
        const number = this.rd(CAP_REG_FRAME);
        result = await this.#command(cmd, frame);
        this.sync(map, capture ? BUS_DMASYNC_POSTREAD : BUS_DMASYNC_POSTWRITE);
        if (result === "ok") {
          result = capture
            ? this.#verifyPixels(frame, number)
            : this.rd(CAP_REG_CHECKSUM) === fnv1a(this.#frameBytes(frame))
            ? "ok"
            : this.#mismatch();
        }
      } finally {
        this.busDma.unload(map);
      }
      return result;
    });
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
  async #command(cmd: number, frame: CaptureFrame): Promise<TransferResult> {
    const map = this.map, breach = this.breach(map.segs, map.nsegs);
    this.wr64(CAP_REG_FB_ADDR, CAP_REG_FB_ADDR_HI, map.segAddr(0));
    this.wr(CAP_REG_WIDTH, frame.width);
    this.wr(CAP_REG_HEIGHT, frame.height);
    const isr = await this.command(CAP_REG_CMD, cmd), status = this.rd(CAP_REG_STATUS);
    if (isr & INT_ERROR) {
      const counted = this.noteFault();
      if (status === CAP_STATUS_DMA_FAULT && counted > 0) return this.account("fault", breach);
      this.error(`command ${cmd} ended with status ${status}`);
      return this.account("error", breach);
    }
    if (!(isr & INT_DONE) || status !== CAP_STATUS_OK) {
      this.error(`no completion interrupt for command ${cmd}`);
      return this.account("error", breach);
    }
    this.counters.transfers++;
    this.counters.bytes += frame.bytes;
    return this.account("ok", breach);
  }

  /** The frame's bytes, read through its kernel mapping into the scratch array. */
  #frameBytes(frame: CaptureFrame): Uint8Array {
    if (this.#scratch.length < frame.bytes) this.#scratch = new Uint8Array(frame.bytes);
    const data = this.#scratch.subarray(0, frame.bytes);
    this.kernel.read(frame.mem.kva, data);
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
    this.counters.mismatches++;
    return "mismatch";
  }
}
