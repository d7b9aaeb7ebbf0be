/**
 * The register layout of the NVMe-style block device, shared by its model
 * (`model.ts`) and its driver (`driver.ts`), as NetBSD's `nvmereg.h` is.
 *
 * Registers (32-bit; the common block of `machine/device.ts` — ID, ISR,
 * IER, FAULT_* — at its usual offsets). Every register keeps the 32 bits
 * written to it; a 64-bit quantity is a LO/HI pair.
 *
 * | offset | name          | access | meaning                                      |
 * |--------|---------------|--------|----------------------------------------------|
 * | 0x00   | ID            | RO     | `NVME_ID` ("NVM1")                            |
 * | 0x10   | BLOCK_SIZE    | RO     | bytes per block (512 or 4096)                |
 * | 0x14   | BLOCKS_LO     | RO     | capacity in blocks, low 32 bits              |
 * | 0x18   | BLOCKS_HI     | RO     | capacity in blocks, high 32 bits             |
 * | 0x1C   | MDTS          | RO     | most data pages per command (256: 1 MiB)     |
 * | 0x20   | OPCODE        | R/W    | `NVME_OP_FLUSH` 0, `NVME_OP_WRITE` 1, `NVME_OP_READ` 2 |
 * | 0x24   | LBA_LO        | R/W    | first block, low 32 bits                     |
 * | 0x28   | LBA_HI        | R/W    | first block, high 32 bits                    |
 * | 0x2C   | COUNT         | R/W    | blocks to move (1-based, unlike NVMe's NLB)  |
 * | 0x30   | PRP1_LO       | R/W    | PRP entry 1, low 32 bits                     |
 * | 0x34   | PRP1_HI       | R/W    | PRP entry 1, high 32 bits                    |
 * | 0x38   | PRP2_LO       | R/W    | PRP entry 2 or PRP list pointer, low bits    |
 * | 0x3C   | PRP2_HI       | R/W    | high 32 bits                                 |
 * | 0x60   | DOORBELL      | W      | a store submits the command                  |
 * | 0x64   | CQ_STATUS     | RO     | status code of the last command (`NVME_SC_*`) |
 * | 0x68   | CQ_COUNT      | RO     | commands completed (any status)              |
 * | 0x6C   | CID           | R/W    | command identifier, echoed in CQ_CID         |
 * | 0x70   | CQ_CID        | RO     | identifier of the last completed command     |
 *
 * PRP entries and list entries are 8-byte little-endian page addresses (see
 * `model.ts` for how a command's data is described). Status codes are
 * NVMe's generic ones.
 *
 * @module
 */

import { DMA_64BIT, type DmaConstraints, fourcc } from "../../machine/mod.ts";

/** ID register value: "NVM1". */
export const NVME_ID: number = fourcc("NVM1");

/** Register: bytes per block. */
export const NVME_REG_BLOCK_SIZE = 0x10;
/** Register: capacity in blocks, low 32 bits. */
export const NVME_REG_BLOCKS_LO = 0x14;
/** Register: capacity in blocks, high bits. */
export const NVME_REG_BLOCKS_HI = 0x18;
/** Register: most data pages per command. */
export const NVME_REG_MDTS = 0x1c;
/** Register: command opcode. */
export const NVME_REG_OPCODE = 0x20;
/** Register: first block, low 32 bits. */
export const NVME_REG_LBA_LO = 0x24;
/** Register: first block, high 32 bits. */
export const NVME_REG_LBA_HI = 0x28;
/** Register: blocks to move (1-based). */
export const NVME_REG_COUNT = 0x2c;
/** Register: PRP entry 1, low 32 bits. */
export const NVME_REG_PRP1_LO = 0x30;
/** Register: PRP entry 1, high 32 bits. */
export const NVME_REG_PRP1_HI = 0x34;
/** Register: PRP entry 2 or list pointer, low 32 bits. */
export const NVME_REG_PRP2_LO = 0x38;
/** Register: PRP entry 2 or list pointer, high 32 bits. */
export const NVME_REG_PRP2_HI = 0x3c;
/** Register: a store submits the command. */
export const NVME_REG_DOORBELL = 0x60;
/** Register: status code of the last command. */
export const NVME_REG_CQ_STATUS = 0x64;
/** Register: commands completed. */
export const NVME_REG_CQ_COUNT = 0x68;
/** Register: command identifier. */
export const NVME_REG_CID = 0x6c;
/** Register: identifier of the last completed command. */
export const NVME_REG_CQ_CID = 0x70;

/** Opcode: flush (nothing to do: the image is always up to date). */
export const NVME_OP_FLUSH = 0x00;
/** Opcode: memory to disk. */
export const NVME_OP_WRITE = 0x01;
/** Opcode: disk to memory. */
export const NVME_OP_READ = 0x02;

/** Status: success. */
export const NVME_SC_SUCCESS = 0x00;
/** Status: unknown opcode. */
export const NVME_SC_INVALID_OPCODE = 0x01;
/** Status: a field is invalid (COUNT). */
export const NVME_SC_INVALID_FIELD = 0x02;
/** Status: a DMA transfer was refused. */
export const NVME_SC_DATA_TRANSFER_ERROR = 0x04;
/** Status: a PRP entry has an offset it may not have. */
export const NVME_SC_PRP_OFFSET_INVALID = 0x13;
/** Status: LBA + COUNT passes the capacity. */
export const NVME_SC_LBA_OUT_OF_RANGE = 0x80;

/** Memory page size of PRP entries. */
export const NVME_PAGE = 4096;
/** Most data pages per command. */
export const NVME_MDTS = 256;

/**
 * The DMA constraints of the device: any address, 4-byte alignment,
 * segments of at most a page that never cross one, MDTS + 1 of them (a
 * first piece inside a page), at most MDTS pages in all.
 */
export const NVME_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_64BIT,
  alignment: 4,
  boundary: NVME_PAGE,
  maxSegments: NVME_MDTS + 1,
  maxSegmentSize: NVME_PAGE,
  maxTransfer: NVME_MDTS * NVME_PAGE,
});
