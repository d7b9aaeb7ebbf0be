/**
 * The register layout of the 30-bit frame-capture device, shared by its
 * model (`model.ts`) and its driver (`driver.ts`).
 *
 * Registers (32-bit; the common block of `machine/device.ts` — ID, ISR,
 * IER, FAULT_* — at its usual offsets):
 *
 * | offset | name       | access | meaning                                            |
 * |--------|------------|--------|----------------------------------------------------|
 * | 0x00   | ID         | RO     | `CAP_ID` ("CAP1")                                   |
 * | 0x10   | FB_ADDR    | R/W    | frame buffer address, low 32 bits: 64 KiB-aligned, below 1 GiB |
 * | 0x14   | WIDTH      | R/W    | pixels per row, 1..2048                            |
 * | 0x18   | HEIGHT     | R/W    | rows, 1..2048                                      |
 * | 0x1C   | CMD        | W      | `CAP_CMD_CAPTURE` 1, `CAP_CMD_SCANOUT` 2, `CAP_CMD_RESET` 0x80 |
 * | 0x20   | STATUS     | RO     | result of the last command (`CAP_STATUS_*`)         |
 * | 0x24   | FRAME      | RO     | frames captured so far (the number of the next one) |
 * | 0x28   | CHECKSUM   | RO     | FNV-1a of the bytes the last SCANOUT read           |
 * | 0x2C   | FB_ADDR_HI | R/W    | frame buffer address, high 32 bits                 |
 *
 * Pixels are 4 bytes (little-endian 32-bit), rows packed.
 *
 * @module
 */

import { DMA_30BIT, type DmaConstraints, fourcc } from "../../machine/mod.ts";

/** ID register value: "CAP1". */
export const CAP_ID: number = fourcc("CAP1");

/** Register: frame buffer address, low 32 bits. */
export const CAP_REG_FB_ADDR = 0x10;
/** Register: pixels per row. */
export const CAP_REG_WIDTH = 0x14;
/** Register: rows. */
export const CAP_REG_HEIGHT = 0x18;
/** Register: a store runs a command. */
export const CAP_REG_CMD = 0x1c;
/** Register: result of the last command. */
export const CAP_REG_STATUS = 0x20;
/** Register: frames captured so far. */
export const CAP_REG_FRAME = 0x24;
/** Register: FNV-1a of the last SCANOUT. */
export const CAP_REG_CHECKSUM = 0x28;
/** Register: frame buffer address, high 32 bits. */
export const CAP_REG_FB_ADDR_HI = 0x2c;

/** Command: write the next frame into the buffer. */
export const CAP_CMD_CAPTURE = 1;
/** Command: read the buffer and hash it. */
export const CAP_CMD_SCANOUT = 2;
/** Command: reset the device. */
export const CAP_CMD_RESET = 0x80;

/** STATUS: the command completed. */
export const CAP_STATUS_OK = 0;
/** STATUS: the DMA port refused the transfer (see FAULT_*). */
export const CAP_STATUS_DMA_FAULT = 1;
/** STATUS: WIDTH or HEIGHT is out of range. */
export const CAP_STATUS_BAD_GEOMETRY = 2;
/** STATUS: CMD held no known command. */
export const CAP_STATUS_BAD_COMMAND = 3;

/** Bytes per pixel. */
export const CAP_BYTES_PER_PIXEL = 4;
/** Largest WIDTH and HEIGHT. */
export const CAP_MAX_DIM = 2048;
/** Required alignment of the frame buffer. */
export const CAP_ALIGN = 65536;

/** The DMA constraints of the device: one 64 KiB-aligned segment below 1 GiB. */
export const CAP_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_30BIT,
  alignment: CAP_ALIGN,
  boundary: 0,
  maxSegments: 1,
  maxSegmentSize: CAP_MAX_DIM * CAP_MAX_DIM * CAP_BYTES_PER_PIXEL,
  maxTransfer: CAP_MAX_DIM * CAP_MAX_DIM * CAP_BYTES_PER_PIXEL,
});
