/**
 * An NVMe-style block device: a sparse disk image, 64-bit DMA and data
 * described by page-granular PRP entries, driven through a command register
 * set (one command at a time, no queues in RAM).
 *
 * Theory. The disk holds `blocks` blocks of `blockSize` bytes (512 or 4096)
 * in a {@link SparseDisk}: 64 KiB chunks materialised on first write; never
 * written blocks read as zeros. A command moves COUNT blocks (1-based; at
 * most MDTS pages of data) between the disk at LBA and memory described by
 * PRPs, as NVMe does with a memory page size of 4096:
 *
 * - PRP1 is the first data address; it may have an offset in its page, a
 *   multiple of 4. The first piece runs from PRP1 to the end of its page
 *   (or the end of the data).
 * - When the rest fits in one page, PRP2 is that page's address.
 * - When more pages follow, PRP2 points (8-byte aligned) to a PRP list: 8-byte
 *   little-endian entries, each a page address, running to the end of the
 *   list's page; when more entries are needed than fit, the page's last
 *   entry points to the next list page.
 * - Every entry but PRP1 must be page aligned (offset 0).
 *
 * The device checks the whole list, reading list pages through its DMA port,
 * before any data moves; its port admits segments below 2^53, 4-byte
 * aligned, never crossing a 4 KiB page, at most MDTS + 1 of them.
 *
 * Registers (32-bit; the common block of `machine/device.ts` — ID, ISR,
 * IER, FAULT_* — at its usual offsets):
 *
 * | offset | name          | access | meaning                                      |
 * |--------|---------------|--------|----------------------------------------------|
 * | 0x00   | ID            | RO     | `NVME_ID` ("NVM1")                            |
 * | 0x10   | BLOCK_SIZE    | RO     | bytes per block (512 or 4096)                |
 * | 0x14   | BLOCKS_LO     | RO     | capacity in blocks, low 32 bits              |
 * | 0x18   | BLOCKS_HI     | RO     | capacity in blocks, high bits                |
 * | 0x1C   | MDTS          | RO     | most data pages per command (256: 1 MiB)     |
 * | 0x20   | OPCODE        | R/W    | `NVME_OP_FLUSH` 0, `NVME_OP_WRITE` 1, `NVME_OP_READ` 2 |
 * | 0x24   | LBA_LO        | R/W    | first block, low 32 bits                     |
 * | 0x28   | LBA_HI        | R/W    | first block, high bits                       |
 * | 0x2C   | COUNT         | R/W    | blocks to move (1-based, unlike NVMe's NLB)  |
 * | 0x30   | PRP1_LO       | R/W    | PRP entry 1, low 32 bits                     |
 * | 0x34   | PRP1_HI       | R/W    | PRP entry 1, high bits                       |
 * | 0x38   | PRP2_LO       | R/W    | PRP entry 2 or PRP list pointer, low bits    |
 * | 0x3C   | PRP2_HI       | R/W    | high bits                                    |
 * | 0x60   | DOORBELL      | W      | a store runs the command                     |
 * | 0x64   | CQ_STATUS     | RO     | status code of the last command (`NVME_SC_*`) |
 * | 0x68   | CQ_COUNT      | RO     | commands completed (any status)              |
 * | 0x6C   | CID           | R/W    | command identifier, echoed in CQ_CID         |
 * | 0x70   | CQ_CID        | RO     | identifier of the last completed command     |
 *
 * Completion: CQ_STATUS, CQ_CID and CQ_COUNT are updated, then ISR gets
 * `INT_DONE` on success or `INT_ERROR` otherwise. Status codes are NVMe's
 * generic ones: `NVME_SC_SUCCESS`, `NVME_SC_INVALID_OPCODE`,
 * `NVME_SC_INVALID_FIELD` (COUNT 0 or past MDTS), `NVME_SC_DATA_TRANSFER_ERROR`
 * (the DMA port refused a PRP, list or data transfer: see FAULT_*),
 * `NVME_SC_PRP_OFFSET_INVALID` (PRP1 not 4-aligned, a later entry not
 * page-aligned, a list pointer not 8-aligned: also recorded as an access
 * fault) and `NVME_SC_LBA_OUT_OF_RANGE`. A failed command moves no data.
 *
 * A driver: a bus_dma tag from {@link NVME_DMA} (any address, 4-byte
 * alignment, 4 KiB boundary and segment size, MDTS + 1 segments) gives
 * segments that map one-to-one onto PRP entries.
 *
 * @module
 */

import {
  DeviceModel,
  DMA_64BIT,
  type DmaConstraints,
  fourcc,
  INT_DONE,
  INT_ERROR,
  type Machine,
  MachineError,
} from "../../machine/mod.ts";

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
/** Register: first block, high bits. */
export const NVME_REG_LBA_HI = 0x28;
/** Register: blocks to move (1-based). */
export const NVME_REG_COUNT = 0x2c;
/** Register: PRP entry 1, low 32 bits. */
export const NVME_REG_PRP1_LO = 0x30;
/** Register: PRP entry 1, high bits. */
export const NVME_REG_PRP1_HI = 0x34;
/** Register: PRP entry 2 or list pointer, low 32 bits. */
export const NVME_REG_PRP2_LO = 0x38;
/** Register: PRP entry 2 or list pointer, high bits. */
export const NVME_REG_PRP2_HI = 0x3c;
/** Register: a store runs the command. */
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

/** The DMA constraints of the device. */
export const NVME_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_64BIT,
  alignment: 4,
  boundary: NVME_PAGE,
  maxSegments: NVME_MDTS + 1,
  maxSegmentSize: NVME_PAGE,
});

const TWO32 = 4294967296;
const DISK_CHUNK = 65536;

/** A disk image that allocates host memory only for the 64 KiB chunks written. */
export class SparseDisk {
  /** Bytes per block. */
  readonly blockSize: number;
  /** Capacity in blocks. */
  readonly blocks: number;
  /** Capacity in bytes. */
  readonly size: number;
  readonly #chunks: (Uint8Array | undefined)[];
  #touched = 0;

  /** An all-zero disk of `blocks` blocks of `blockSize` (512 or 4096) bytes. */
  constructor(blockSize = 4096, blocks = 262144) {
    if (blockSize !== 512 && blockSize !== 4096) {
      throw new MachineError("EINVAL", `blockSize must be 512 or 4096, got ${blockSize}`);
    }
    if (!Number.isInteger(blocks) || blocks < 1 || blocks * blockSize > 2 ** 44) {
      throw new MachineError(
        "EINVAL",
        `blocks must be an integer in [1, 2^44 / blockSize], got ${blocks}`,
      );
    }
    this.blockSize = blockSize;
    this.blocks = blocks;
    this.size = blocks * blockSize;
    this.#chunks = new Array(Math.ceil(this.size / DISK_CHUNK));
  }

  /** Host bytes given to written chunks. */
  touchedBytes(): number {
    return this.#touched * DISK_CHUNK;
  }

  /** Copies `len` bytes of the image at byte offset `at` into `dst[o ..]`. */
  read(at: number, dst: Uint8Array, o: number, len: number): void {
    this.#range(at, len);
    while (len > 0) {
      const c = Math.floor(at / DISK_CHUNK), off = at - c * DISK_CHUNK;
      const n = Math.min(len, DISK_CHUNK - off);
      const chunk = this.#chunks[c];
      if (chunk === undefined) dst.fill(0, o, o + n);
      else dst.set(chunk.subarray(off, off + n), o);
      at += n;
      o += n;
      len -= n;
    }
  }

  /** Copies `src[o .. o + len)` into the image at byte offset `at`. */
  write(at: number, src: Uint8Array, o: number, len: number): void {
    this.#range(at, len);
    while (len > 0) {
      const c = Math.floor(at / DISK_CHUNK), off = at - c * DISK_CHUNK;
      const n = Math.min(len, DISK_CHUNK - off);
      let chunk = this.#chunks[c];
      if (chunk === undefined) {
        chunk = new Uint8Array(DISK_CHUNK);
        this.#chunks[c] = chunk;
        this.#touched++;
      }
      chunk.set(src.subarray(o, o + n), off);
      at += n;
      o += n;
      len -= n;
    }
  }

  #range(at: number, len: number): void {
    if (
      !Number.isInteger(at) || !Number.isInteger(len) || at < 0 || len < 0 || at + len > this.size
    ) {
      throw new MachineError(
        "EINVAL",
        `disk range ${at}+${len} is outside the ${this.size}-byte image`,
      );
    }
  }
}

/** Options of {@link NvmeModel}. */
export interface NvmeOptions {
  /** Instance name (default "nvme0"). */
  name?: string;
  /** Bytes per block: 512 or 4096 (default). */
  blockSize?: number;
  /** Capacity in blocks (default 262144: 1 GiB of 4 KiB blocks). */
  blocks?: number;
}

/** The NVMe-style device model. */
export class NvmeModel extends DeviceModel {
  /** The disk image (tests and tools may look at it directly). */
  readonly disk: SparseDisk;
  #opcode = 0;
  #lba = 0;
  #count = 0;
  #prp1 = 0;
  #prp2 = 0;
  #cid = 0;
  #cqStatus = 0;
  #cqCid = 0;
  #cqCount = 0;

  readonly #segs = new Float64Array(2 * (NVME_MDTS + 1));
  readonly #list = new Uint8Array(NVME_PAGE);
  readonly #listView = new DataView(this.#list.buffer);
  readonly #data = new Uint8Array(NVME_MDTS * NVME_PAGE);

  /** Attaches an NVMe-style device (type "nvme") with a fresh sparse disk. */
  constructor(machine: Machine, options: NvmeOptions = {}) {
    const disk = new SparseDisk(options.blockSize ?? 4096, options.blocks ?? 262144);
    super(machine, { name: options.name ?? "nvme0", type: "nvme", id: NVME_ID, dma: NVME_DMA });
    this.disk = disk;
  }

  /** Model register loads. */
  protected readReg(offset: number): number {
    switch (offset) {
      case NVME_REG_BLOCK_SIZE:
        return this.disk.blockSize;
      case NVME_REG_BLOCKS_LO:
        return this.disk.blocks % TWO32;
      case NVME_REG_BLOCKS_HI:
        return Math.floor(this.disk.blocks / TWO32);
      case NVME_REG_MDTS:
        return NVME_MDTS;
      case NVME_REG_OPCODE:
        return this.#opcode;
      case NVME_REG_LBA_LO:
        return this.#lba % TWO32;
      case NVME_REG_LBA_HI:
        return Math.floor(this.#lba / TWO32);
      case NVME_REG_COUNT:
        return this.#count;
      case NVME_REG_PRP1_LO:
        return this.#prp1 % TWO32;
      case NVME_REG_PRP1_HI:
        return Math.floor(this.#prp1 / TWO32);
      case NVME_REG_PRP2_LO:
        return this.#prp2 % TWO32;
      case NVME_REG_PRP2_HI:
        return Math.floor(this.#prp2 / TWO32);
      case NVME_REG_CQ_STATUS:
        return this.#cqStatus;
      case NVME_REG_CQ_COUNT:
        return this.#cqCount;
      case NVME_REG_CID:
        return this.#cid;
      case NVME_REG_CQ_CID:
        return this.#cqCid;
      default:
        return 0;
    }
  }

  /** Model register stores. */
  protected writeReg(offset: number, value: number): void {
    switch (offset) {
      case NVME_REG_OPCODE:
        this.#opcode = value;
        return;
      case NVME_REG_LBA_LO:
        this.#lba = Math.floor(this.#lba / TWO32) * TWO32 + value;
        return;
      case NVME_REG_LBA_HI:
        this.#lba = hi(value) * TWO32 + (this.#lba % TWO32);
        return;
      case NVME_REG_COUNT:
        this.#count = value;
        return;
      case NVME_REG_PRP1_LO:
        this.#prp1 = Math.floor(this.#prp1 / TWO32) * TWO32 + value;
        return;
      case NVME_REG_PRP1_HI:
        this.#prp1 = hi(value) * TWO32 + (this.#prp1 % TWO32);
        return;
      case NVME_REG_PRP2_LO:
        this.#prp2 = Math.floor(this.#prp2 / TWO32) * TWO32 + value;
        return;
      case NVME_REG_PRP2_HI:
        this.#prp2 = hi(value) * TWO32 + (this.#prp2 % TWO32);
        return;
      case NVME_REG_CID:
        this.#cid = value;
        return;
      case NVME_REG_DOORBELL:
        this.#complete(this.#execute());
        return;
    }
  }

  #complete(status: number): void {
    this.#cqStatus = status;
    this.#cqCid = this.#cid;
    this.#cqCount++;
    this.interrupt(status === NVME_SC_SUCCESS ? INT_DONE : INT_ERROR);
  }

  #execute(): number {
    const op = this.#opcode;
    if (op === NVME_OP_FLUSH) return NVME_SC_SUCCESS;
    if (op !== NVME_OP_WRITE && op !== NVME_OP_READ) return NVME_SC_INVALID_OPCODE;
    const bs = this.disk.blockSize;
    const count = this.#count;
    if (count < 1 || count * bs > NVME_MDTS * NVME_PAGE) return NVME_SC_INVALID_FIELD;
    if (this.#lba + count > this.disk.blocks) return NVME_SC_LBA_OUT_OF_RANGE;
    const len = count * bs;
    const dir = op === NVME_OP_WRITE ? "read" : "write"; // as the port sees it
    const n = this.#walkPrps(len, dir);
    if (n < 0) return -n;
    const at = this.#lba * bs;
    if (op === NVME_OP_WRITE) {
      if (this.dma.readSg(this.#segs, n, this.#data) < 0) return NVME_SC_DATA_TRANSFER_ERROR;
      this.disk.write(at, this.#data, 0, len);
    } else {
      this.disk.read(at, this.#data, 0, len);
      if (this.dma.writeSg(this.#segs, n, this.#data) < 0) return NVME_SC_DATA_TRANSFER_ERROR;
    }
    return NVME_SC_SUCCESS;
  }

  /**
   * Turns PRP1/PRP2 (and any PRP lists) into segments for `len` bytes.
   * Returns the segment count, or minus a status code after recording the fault.
   */
  #walkPrps(len: number, dir: "read" | "write"): number {
    const segs = this.#segs, port = this.dma;
    const p1 = this.#prp1;
    if (p1 % 4 !== 0) {
      port.fault("access", dir, p1, len, "PRP1 is not 4-byte aligned");
      return -NVME_SC_PRP_OFFSET_INVALID;
    }
    const first = Math.min(len, NVME_PAGE - (p1 % NVME_PAGE));
    segs[0] = p1;
    segs[1] = first;
    let n = 1, left = len - first;
    if (left === 0) return n;
    const p2 = this.#prp2;
    if (left <= NVME_PAGE) {
      if (p2 % NVME_PAGE !== 0) {
        port.fault("access", dir, p2, left, "PRP2 is not page aligned");
        return -NVME_SC_PRP_OFFSET_INVALID;
      }
      segs[2] = p2;
      segs[3] = left;
      return 2;
    }
    let list = p2;
    if (list % 8 !== 0) {
      port.fault("access", "read", list, 8, "PRP list pointer is not 8-byte aligned");
      return -NVME_SC_PRP_OFFSET_INVALID;
    }
    const view = this.#listView;
    while (left > 0) {
      const room = (NVME_PAGE - (list % NVME_PAGE)) / 8;
      const need = Math.ceil(left / NVME_PAGE);
      const chained = need > room;
      const entries = chained ? room : need;
      if (!port.read(list, this.#list, 0, entries * 8)) return -NVME_SC_DATA_TRANSFER_ERROR;
      const data = chained ? entries - 1 : entries;
      for (let i = 0; i < data; i++) {
        const e = view.getUint32(8 * i, true) + view.getUint32(8 * i + 4, true) * TWO32;
        if (e % NVME_PAGE !== 0) {
          port.fault("access", dir, e, NVME_PAGE, `PRP list entry ${i} is not page aligned`);
          return -NVME_SC_PRP_OFFSET_INVALID;
        }
        const piece = Math.min(left, NVME_PAGE);
        segs[2 * n] = e;
        segs[2 * n + 1] = piece;
        n++;
        left -= piece;
      }
      if (chained) {
        const next = view.getUint32(8 * data, true) + view.getUint32(8 * data + 4, true) * TWO32;
        if (next % NVME_PAGE !== 0) {
          port.fault("access", "read", next, 8, "next PRP list page is not page aligned");
          return -NVME_SC_PRP_OFFSET_INVALID;
        }
        list = next;
      }
    }
    return n;
  }
}

function hi(v: number): number {
  // Addresses stay below 2^53: only 21 high bits count.
  return v & 0x1fffff;
}
