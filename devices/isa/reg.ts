/**
 * The register layout of the ISA DMA device (an 8237-style channel), shared
 * by its model (`model.ts`) and its driver (`driver.ts`).
 *
 * Registers (32-bit, offsets from the window base; the common block of
 * `machine/device.ts` — ID, ISR, IER, FAULT_* — is at its usual offsets):
 *
 * | offset | name      | access | meaning                                            |
 * |--------|-----------|--------|----------------------------------------------------|
 * | 0x00   | ID        | RO     | `ISA_ID` ("ISA8")                                   |
 * | 0x10   | ADDR      | R/W    | physical address of the buffer, low 32 bits        |
 * | 0x14   | COUNT     | R/W    | bytes to move, 1..65536 (the byte count, not count-1) |
 * | 0x18   | CMD       | W      | a store starts a command; reads 0                  |
 * | 0x1C   | STATUS    | RO     | result of the last command (`ISA_STATUS_*`)        |
 * | 0x20   | CHECKSUM  | RO     | FNV-1a of the bytes the last PLAY read             |
 * | 0x24   | PATTERN   | R/W    | seed of FILL: byte i is `(PATTERN + i) & 0xff`     |
 * | 0x28   | TRANSFERS | RO     | commands that moved data                           |
 * | 0x2C   | ADDR_HI   | R/W    | physical address of the buffer, high 32 bits       |
 *
 * Commands: `ISA_CMD_PLAY` (1) reads COUNT bytes at the address, `ISA_CMD_RECORD`
 * (2) writes back what the last PLAY read, `ISA_CMD_FILL` (3) writes the
 * FILL pattern, `ISA_CMD_RESET` (0x80) clears the device.
 *
 * @module
 */

import { DMA_24BIT, type DmaConstraints, fourcc } from "../../machine/mod.ts";

/** ID register value: "ISA8". */
export const ISA_ID: number = fourcc("ISA8");

/** Register: physical address of the buffer, low 32 bits. */
export const ISA_REG_ADDR = 0x10;
/** Register: bytes to move (1..65536). */
export const ISA_REG_COUNT = 0x14;
/** Register: a store runs a command. */
export const ISA_REG_CMD = 0x18;
/** Register: result of the last command. */
export const ISA_REG_STATUS = 0x1c;
/** Register: FNV-1a of the bytes the last PLAY read. */
export const ISA_REG_CHECKSUM = 0x20;
/** Register: seed of the FILL pattern. */
export const ISA_REG_PATTERN = 0x24;
/** Register: commands that moved data. */
export const ISA_REG_TRANSFERS = 0x28;
/** Register: physical address of the buffer, high 32 bits. */
export const ISA_REG_ADDR_HI = 0x2c;

/** Command: read COUNT bytes at ADDR into the device. */
export const ISA_CMD_PLAY = 1;
/** Command: write the device buffer's first COUNT bytes to ADDR. */
export const ISA_CMD_RECORD = 2;
/** Command: write `(PATTERN + i) & 0xff` to the COUNT bytes at ADDR. */
export const ISA_CMD_FILL = 3;
/** Command: reset the device. */
export const ISA_CMD_RESET = 0x80;

/** STATUS: the command completed. */
export const ISA_STATUS_OK = 0;
/** STATUS: the DMA port refused the transfer; see the FAULT registers. */
export const ISA_STATUS_DMA_FAULT = 1;
/** STATUS: CMD held no known command. */
export const ISA_STATUS_BAD_COMMAND = 2;

/** Largest transfer: 64 KiB. */
export const ISA_MAX_TRANSFER = 65536;

/** The DMA constraints of an 8-bit 8237 channel: one segment below 16 MiB, never across 64 KiB. */
export const ISA_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_24BIT,
  alignment: 1,
  boundary: 65536,
  maxSegments: 1,
  maxSegmentSize: ISA_MAX_TRANSFER,
  maxTransfer: ISA_MAX_TRANSFER,
});
