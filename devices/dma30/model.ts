/**
 * A frame-capture device with an unusual DMA window: it drives only 30
 * address bits and needs its whole frame buffer as one contiguous,
 * 64 KiB-aligned block (as some capture and display engines of the 1990s
 * and 2000s did).
 *
 * Theory. The device captures frames of WIDTH x HEIGHT pixels, 4 bytes each
 * (little-endian 32-bit, rows packed: the stride is WIDTH * 4), and writes
 * each frame in one transfer to FB_ADDR. Its DMA port admits one segment,
 * starting on a 64 KiB boundary, ending below 1 GiB, of at most 16 MiB.
 * The pixel at (x, y) of frame number f is {@link capturePixel}`(x, y, f)`,
 * so a driver can check every byte. SCANOUT is the other direction: the
 * device reads the frame buffer (as a display engine would) and reports
 * the FNV-1a hash of its bytes in CHECKSUM.
 *
 * Registers are in `reg.ts`; FB_ADDR and FB_ADDR_HI latch the full
 * address the driver writes, and the port refuses what the engine cannot
 * drive.
 *
 * On success STATUS is `CAP_STATUS_OK` and ISR gets `INT_DONE`. A buffer the
 * port refuses (not 64 KiB-aligned, reaching 1 GiB, not RAM) leaves memory
 * untouched, records the fault (FAULT_*), sets `CAP_STATUS_DMA_FAULT` and
 * raises `INT_ERROR`; so do a WIDTH or HEIGHT out of range
 * (`CAP_STATUS_BAD_GEOMETRY`, no DMA fault) and an unknown command
 * (`CAP_STATUS_BAD_COMMAND`). A failed capture does not advance FRAME.
 *
 * A driver: one segment from a bus_dma tag made from the device's limits
 * (`CAP_DMA` in `reg.ts`: high 1 GiB - 1, alignment 64 KiB, one segment of
 * at most 16 MiB), e.g. `bus_dmamem_alloc` of the frame size.
 *
 * @module
 */

import { DeviceModel, fnv1a, INT_DONE, INT_ERROR, type Machine, TWO32 } from "../../machine/mod.ts";
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
  CAP_REG_FB_ADDR_HI,
  CAP_REG_FRAME,
  CAP_REG_HEIGHT,
  CAP_REG_STATUS,
  CAP_REG_WIDTH,
  CAP_STATUS_BAD_COMMAND,
  CAP_STATUS_BAD_GEOMETRY,
  CAP_STATUS_DMA_FAULT,
  CAP_STATUS_OK,
} from "./reg.ts";

/** The 32-bit pixel the device writes at (x, y) of frame `frame`: 0xFF, frame, y, x (low 8 bits each). */
export function capturePixel(x: number, y: number, frame: number): number {
  return (0xff000000 | ((frame & 0xff) << 16) | ((y & 0xff) << 8) | (x & 0xff)) >>> 0;
}

/** The frame-capture device model. */
export class CaptureModel extends DeviceModel {
  #fb = 0;
  #fbHi = 0;
  #width = 0;
  #height = 0;
  #status = CAP_STATUS_OK;
  #frame = 0;
  #checksum = 0;
  #buf: Uint8Array = new Uint8Array(0);

  /** Attaches a capture device named `name` (type "dma30") to `machine`. */
  constructor(machine: Machine, name?: string) {
    super(machine, {
      name: name === undefined ? "cap0" : name,
      type: "dma30",
      id: CAP_ID,
      dma: CAP_DMA,
    });
  }

  /** Model register loads. */
  protected readReg(offset: number): number {
    switch (offset) {
      case CAP_REG_FB_ADDR:
        return this.#fb;
      case CAP_REG_FB_ADDR_HI:
        return this.#fbHi;
      case CAP_REG_WIDTH:
        return this.#width;
      case CAP_REG_HEIGHT:
        return this.#height;
      case CAP_REG_STATUS:
        return this.#status;
      case CAP_REG_FRAME:
        return this.#frame;
      case CAP_REG_CHECKSUM:
        return this.#checksum;
      default:
        return 0;
    }
  }

  /** Model register stores. */
  protected writeReg(offset: number, value: number): void {
    switch (offset) {
      case CAP_REG_FB_ADDR:
        this.#fb = value;
        return;
      case CAP_REG_FB_ADDR_HI:
        this.#fbHi = value;
        return;
      case CAP_REG_WIDTH:
        this.#width = value;
        return;
      case CAP_REG_HEIGHT:
        this.#height = value;
        return;
      case CAP_REG_CMD:
        this.#command(value);
        return;
    }
  }

  #command(cmd: number): void {
    if (cmd === CAP_CMD_RESET) {
      this.#fb =
        this.#fbHi =
        this.#width =
        this.#height =
        this.#frame =
        this.#checksum =
          0;
      this.#status = CAP_STATUS_OK;
      this.resetCommon();
      return;
    }
    if (cmd !== CAP_CMD_CAPTURE && cmd !== CAP_CMD_SCANOUT) {
      this.#finish(CAP_STATUS_BAD_COMMAND);
      return;
    }
    const w = this.#width, h = this.#height;
    if (w < 1 || w > CAP_MAX_DIM || h < 1 || h > CAP_MAX_DIM) {
      this.#finish(CAP_STATUS_BAD_GEOMETRY);
      return;
    }
    const len = w * h * CAP_BYTES_PER_PIXEL;
    if (this.#buf.length < len) this.#buf = new Uint8Array(len);
    const buf = this.#buf, fb = this.#fbHi * TWO32 + this.#fb;
    if (cmd === CAP_CMD_CAPTURE) {
      // Check first: a refused frame is neither drawn nor counted.
      if (!this.dma.validate(fb, len, "write")) {
        this.#finish(CAP_STATUS_DMA_FAULT);
        return;
      }
      this.#draw(buf, w, h, this.#frame);
      if (!this.dma.write(fb, buf, 0, len)) {
        this.#finish(CAP_STATUS_DMA_FAULT);
        return;
      }
      this.#frame++;
    } else {
      if (!this.dma.read(fb, buf, 0, len)) {
        this.#finish(CAP_STATUS_DMA_FAULT);
        return;
      }
      this.#checksum = fnv1a(buf, 0, len);
    }
    this.#finish(CAP_STATUS_OK);
  }

  #draw(buf: Uint8Array, w: number, h: number, frame: number): void {
    const f = frame & 0xff;
    let o = 0;
    for (let y = 0; y < h; y++) {
      const yb = y & 0xff;
      for (let x = 0; x < w; x++) {
        buf[o] = x & 0xff;
        buf[o + 1] = yb;
        buf[o + 2] = f;
        buf[o + 3] = 0xff;
        o += 4;
      }
    }
  }

  #finish(status: number): void {
    this.#status = status;
    this.interrupt(status === CAP_STATUS_OK ? INT_DONE : INT_ERROR);
  }
}
