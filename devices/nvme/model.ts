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
 * The registers are in `reg.ts`. A store to DOORBELL submits the command
 * with the registers' values at that moment (the driver may reprogram them
 * at once); the device carries it out later, on the machine's clock, after
 * {@link NVME_LATENCY} nanoseconds plus a nanosecond per byte (1 GB/s), or
 * inside the store when the model is synchronous. Then CQ_STATUS, CQ_CID
 * and CQ_COUNT are updated and ISR gets `INT_DONE` on success or
 * `INT_ERROR` otherwise. Status codes: `NVME_SC_SUCCESS`,
 * `NVME_SC_INVALID_OPCODE`, `NVME_SC_INVALID_FIELD` (COUNT 0 or past
 * MDTS), `NVME_SC_DATA_TRANSFER_ERROR` (the DMA port refused a PRP, list or
 * data transfer: see FAULT_*), `NVME_SC_PRP_OFFSET_INVALID` (PRP1 not
 * 4-aligned, a later entry not page-aligned, a list pointer not 8-aligned:
 * also recorded as an access fault) and `NVME_SC_LBA_OUT_OF_RANGE`. A
 * failed command moves no data.
 *
 * Addresses and block numbers are the full 64 bits of their register
 * pairs: an address past what the machine can hold (2^53 - 1) reaches the
 * port as it is and is a DMA fault; an LBA past the disk is out of range.
 * Nothing is masked.
 *
 * A driver: a bus_dma tag from the device's limits (`NVME_DMA` in
 * `reg.ts`: any address, 4-byte alignment, 4 KiB boundary and segment
 * size, MDTS + 1 segments) gives segments that map one-to-one onto PRP
 * entries.
 *
 * @module
 */

import {
  DeviceModel,
  INT_DONE,
  INT_ERROR,
  type Machine,
  MachineError,
  TWO32,
} from "../../machine/mod.ts";
import {
  NVME_DMA,
  NVME_ID,
  NVME_MDTS,
  NVME_OP_FLUSH,
  NVME_OP_READ,
  NVME_OP_WRITE,
  NVME_PAGE,
  NVME_REG_BLOCK_SIZE,
  NVME_REG_BLOCKS_HI,
  NVME_REG_BLOCKS_LO,
  NVME_REG_CID,
  NVME_REG_COUNT,
  NVME_REG_CQ_CID,
  NVME_REG_CQ_COUNT,
  NVME_REG_CQ_STATUS,
  NVME_REG_DOORBELL,
  NVME_REG_LBA_HI,
  NVME_REG_LBA_LO,
  NVME_REG_MDTS,
  NVME_REG_OPCODE,
  NVME_REG_PRP1_HI,
  NVME_REG_PRP1_LO,
  NVME_REG_PRP2_HI,
  NVME_REG_PRP2_LO,
  NVME_SC_DATA_TRANSFER_ERROR,
  NVME_SC_INVALID_FIELD,
  NVME_SC_INVALID_OPCODE,
  NVME_SC_LBA_OUT_OF_RANGE,
  NVME_SC_PRP_OFFSET_INVALID,
  NVME_SC_SUCCESS,
} from "./reg.ts";

/** Fixed part of a command's latency, in nanoseconds (plus one per byte). */
export const NVME_LATENCY = 20_000;

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
  constructor(blockSize?: number, blocks?: number) {
    if (blockSize === undefined) blockSize = 4096;
    if (blocks === undefined) blocks = 262144;
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
  /** Complete commands inside the doorbell store (default false: later, on the clock). */
  synchronous?: boolean;
}

/** A submitted command: the registers as they were at the doorbell. */
interface Command {
  readonly opcode: number;
  readonly lba: number;
  readonly count: number;
  readonly prp1: number;
  readonly prp2: number;
  readonly cid: number;
}

/** The NVMe-style device model. */
export class NvmeModel extends DeviceModel {
  /** The disk image (tests and tools may look at it directly). */
  readonly disk: SparseDisk;
  // The registers, each as written (32 bits).
  readonly #reg = new Uint32Array(0x80 / 4);
  #cqStatus = 0;
  #cqCid = 0;
  #cqCount = 0;

  readonly #segs = new Float64Array(2 * (NVME_MDTS + 1));
  readonly #list = new Uint8Array(NVME_PAGE);
  readonly #listView = new DataView(this.#list.buffer);
  readonly #data = new Uint8Array(NVME_MDTS * NVME_PAGE);

  /** Attaches an NVMe-style device (type "nvme") with a fresh sparse disk. */
  constructor(machine: Machine, options?: NvmeOptions) {
    if (options === undefined) options = {};
    const disk = new SparseDisk(options.blockSize ?? 4096, options.blocks ?? 262144);
    super(machine, {
      name: options.name ?? "nvme0",
      type: "nvme",
      id: NVME_ID,
      dma: NVME_DMA,
      synchronous: options.synchronous,
    });
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
      case NVME_REG_LBA_LO:
      case NVME_REG_LBA_HI:
      case NVME_REG_COUNT:
      case NVME_REG_PRP1_LO:
      case NVME_REG_PRP1_HI:
      case NVME_REG_PRP2_LO:
      case NVME_REG_PRP2_HI:
      case NVME_REG_CID:
        return this.#reg[offset / 4]!;
      case NVME_REG_CQ_STATUS:
        return this.#cqStatus;
      case NVME_REG_CQ_COUNT:
        return this.#cqCount;
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
      case NVME_REG_LBA_LO:
      case NVME_REG_LBA_HI:
      case NVME_REG_COUNT:
      case NVME_REG_PRP1_LO:
      case NVME_REG_PRP1_HI:
      case NVME_REG_PRP2_LO:
      case NVME_REG_PRP2_HI:
      case NVME_REG_CID:
        this.#reg[offset / 4] = value;
        return;
      case NVME_REG_DOORBELL: {
        const r = this.#reg;
        const cmd: Command = {
          opcode: r[NVME_REG_OPCODE / 4]!,
          lba: wide(r[NVME_REG_LBA_LO / 4]!, r[NVME_REG_LBA_HI / 4]!),
          count: r[NVME_REG_COUNT / 4]!,
          prp1: wide(r[NVME_REG_PRP1_LO / 4]!, r[NVME_REG_PRP1_HI / 4]!),
          prp2: wide(r[NVME_REG_PRP2_LO / 4]!, r[NVME_REG_PRP2_HI / 4]!),
          cid: r[NVME_REG_CID / 4]!,
        };
        const bytes = cmd.opcode === NVME_OP_FLUSH
          ? 0
          : Math.min(cmd.count * this.disk.blockSize, NVME_MDTS * NVME_PAGE);
        this.later(NVME_LATENCY + bytes, () => this.#complete(cmd, this.#execute(cmd)));
        return;
      }
    }
  }

  #complete(cmd: Command, status: number): void {
    this.#cqStatus = status;
    this.#cqCid = cmd.cid;
    this.#cqCount++;
    this.interrupt(status === NVME_SC_SUCCESS ? INT_DONE : INT_ERROR);
  }

  #execute(cmd: Command): number {
    const op = cmd.opcode;
    if (op === NVME_OP_FLUSH) return NVME_SC_SUCCESS;
    if (op !== NVME_OP_WRITE && op !== NVME_OP_READ) return NVME_SC_INVALID_OPCODE;
    const bs = this.disk.blockSize;
    const count = cmd.count;
    if (count < 1 || count * bs > NVME_MDTS * NVME_PAGE) return NVME_SC_INVALID_FIELD;
    // A block number past 2^53 is not exact, but far past any disk.
    if (cmd.lba + count > this.disk.blocks) return NVME_SC_LBA_OUT_OF_RANGE;
    const len = count * bs;
    const dir = op === NVME_OP_WRITE ? "read" : "write"; // as the port sees it
    const n = this.#walkPrps(cmd, len, dir);
    if (n < 0) return -n;
    const at = cmd.lba * bs;
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
  #walkPrps(cmd: Command, len: number, dir: "read" | "write"): number {
    const segs = this.#segs, port = this.dma;
    const p1 = cmd.prp1;
    if (p1 % 4 !== 0) {
      port.fault("access", dir, p1, len, "PRP1 is not 4-byte aligned");
      return -NVME_SC_PRP_OFFSET_INVALID;
    }
    const first = Math.min(len, NVME_PAGE - (p1 % NVME_PAGE));
    segs[0] = p1;
    segs[1] = first;
    let n = 1, left = len - first;
    if (left === 0) return n;
    const p2 = cmd.prp2;
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
        const e = wide(view.getUint32(8 * i, true), view.getUint32(8 * i + 4, true));
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
        const next = wide(view.getUint32(8 * data, true), view.getUint32(8 * data + 4, true));
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

/**
 * The 64-bit value of a register pair as a number: exact below 2^53, and
 * past it a number past 2^53 - 1 all the same (which the port refuses).
 */
function wide(lo: number, hi: number): number {
  return hi * TWO32 + lo;
}
