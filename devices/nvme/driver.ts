/**
 * The driver of the NVMe-style block device (`model.ts`): block writes
 * from kernel buffers and block reads into them, described to the device
 * by PRP entries built from bus_dma segments.
 *
 * Theory. The tag is the device's: any 64-bit address, 4-byte alignment,
 * segments of at most a page that never cross a page, MDTS + 1 of them. So
 * every segment of a loaded map is one PRP entry's piece: the first may
 * start inside its page and runs to the page's end, the following ones are
 * whole pages, the last may stop short. The driver splits segments at page
 * ends anyway (with tags ignored a segment may span pages) and refuses,
 * as an error, a layout PRPs cannot express rather than let the device
 * move the wrong bytes. One entry goes in PRP1, two in PRP1 and PRP2; more
 * go in the PRP list, a page of DMA memory allocated at attach, which PRP2
 * then points to. The device reaches all of RAM, so no bounce pool is
 * reserved and buffers above 4 GiB go through in place; a buffer not
 * 4-byte aligned is refused (PRP1 must be).
 *
 * A command: load the map; sync (PREWRITE for a disk write, PREREAD for a
 * read); fill the PRP list; write OPCODE, LBA, COUNT (blocks, 1-based),
 * PRP1, PRP2 and a fresh CID; store the doorbell. The model completes
 * inside the store and raises its line; the driver lets the interrupt
 * controller deliver (the interrupt arriving: the handler collects and
 * acknowledges ISR), checks CQ_STATUS and that CQ_CID echoes the command's
 * identifier, syncs (POSTWRITE or POSTREAD) and unloads. A data-transfer or
 * PRP-offset status is a DMA fault the device recorded.
 *
 * Data structures: one map, the PRP list page and an 8-byte entry scratch,
 * all made at attach. Cost of a command: O(pages) to load and build PRPs.
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
import { type DeviceInfo, INT_DONE, INT_ERROR, REG_IER } from "../../machine/mod.ts";
import {
  NVME_DMA,
  NVME_ID,
  NVME_MDTS,
  NVME_OP_READ,
  NVME_OP_WRITE,
  NVME_PAGE,
  NVME_REG_BLOCK_SIZE,
  NVME_REG_BLOCKS_HI,
  NVME_REG_BLOCKS_LO,
  NVME_REG_CID,
  NVME_REG_COUNT,
  NVME_REG_CQ_CID,
  NVME_REG_CQ_STATUS,
  NVME_REG_DOORBELL,
  NVME_REG_LBA_HI,
  NVME_REG_LBA_LO,
  NVME_REG_OPCODE,
  NVME_REG_PRP1_HI,
  NVME_REG_PRP1_LO,
  NVME_REG_PRP2_HI,
  NVME_REG_PRP2_LO,
  NVME_SC_DATA_TRANSFER_ERROR,
  NVME_SC_PRP_OFFSET_INVALID,
  NVME_SC_SUCCESS,
} from "./model.ts";
import { DriverBase, type DriverSpec, type TransferResult, TWO32 } from "../driver.ts";

/** Largest command the driver issues: 256 KiB (the device takes up to MDTS pages). */
export const NVME_MAX_TRANSFER: number = 64 * NVME_PAGE;

/** PRP entries: one per page of the largest transfer, plus one for a start inside a page. */
const MAX_PRPS = NVME_MAX_TRANSFER / NVME_PAGE + 1;

const SPEC: DriverSpec = {
  type: "nvme",
  article: "an",
  id: NVME_ID,
  dma: NVME_DMA,
  maxSize: NVME_MDTS * NVME_PAGE,
  ignoredMaxSize: NVME_MAX_TRANSFER,
};

/** Driver of the NVMe-style block device. */
export class NvmeDriver extends DriverBase {
  /** The data map (one command at a time). */
  readonly map: DmaMap;
  /** The PRP list page. */
  readonly prpList: DmaMemory;
  /** Bytes per block. */
  readonly blockSize: number;
  /** Capacity in blocks. */
  readonly blocks: number;

  readonly #prps = new Float64Array(MAX_PRPS);
  readonly #entry = new Uint8Array(8);
  readonly #ev = new DataView(this.#entry.buffer);
  #cid = 0;

  /** Attaches to the device `info`: tag, PRP list page, map, interrupt. */
  constructor(kernel: Kernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    this.blockSize = this.rd(NVME_REG_BLOCK_SIZE);
    this.blocks = this.rd64(NVME_REG_BLOCKS_LO, NVME_REG_BLOCKS_HI);
    const bd = kernel.busDma;
    this.prpList = bd.dmamemAlloc(this.tag, NVME_PAGE, { nsegs: 1 });
    try {
      this.map = bd.createMap(this.tag, NVME_MAX_TRANSFER, MAX_PRPS);
    } catch (e) {
      bd.dmamemFree(this.prpList);
      throw e;
    }
    try {
      this.establish();
    } catch (e) {
      bd.destroyMap(this.map);
      bd.dmamemFree(this.prpList);
      throw e;
    }
    this.enableInterrupts();
  }

  /** Writes the `len` bytes at kernel address `va` to the disk from block `lba`. */
  write(lba: number, va: number, len: number): TransferResult {
    return this.#io(NVME_OP_WRITE, lba, va, len);
  }

  /** Reads `len` bytes of the disk from block `lba` into the kernel buffer at `va`. */
  read(lba: number, va: number, len: number): TransferResult {
    return this.#io(NVME_OP_READ, lba, va, len);
  }

  /** Verifies the driver's invariants. */
  check(): void {
    this.checkCounters("NvmeDriver");
    const s = this.counters;
    if (s.bouncedBytes > s.bytes) {
      throw new Error("NvmeDriver.check: more bytes bounced than moved");
    }
    if (this.map.mapsize !== 0) throw new Error("NvmeDriver.check: map left loaded");
  }

  /** Masks the device's interrupts. */
  protected quiesce(): void {
    this.wr(REG_IER, 0);
  }

  /** Frees the map and the PRP list page. */
  protected release(): void {
    this.kernel.busDma.destroyMap(this.map);
    this.kernel.busDma.dmamemFree(this.prpList);
  }

  #io(op: number, lba: number, va: number, len: number): TransferResult {
    this.assertAttached();
    const bs = this.blockSize;
    checkInteger("len", len, bs, NVME_MAX_TRANSFER);
    if (len % bs !== 0) {
      throw new KernelError("EINVAL", `len must be a multiple of ${bs}, got ${describe(len)}`);
    }
    const count = len / bs;
    checkInteger("lba", lba, 0, this.blocks - count);
    checkInteger("va", va);
    if (va % 4 !== 0) {
      throw new KernelError("EINVAL", `va must be 4-byte aligned for PRP1, got ${describe(va)}`);
    }
    const bd = this.kernel.busDma, map = this.map, s = this.counters;
    const toDevice = op === NVME_OP_WRITE;
    bd.load(map, va, len);
    const bounced = map.bouncedBytes;
    let result: TransferResult = "ok";
    try {
      bd.sync(map, toDevice ? BUS_DMASYNC_PREWRITE : BUS_DMASYNC_PREREAD);
      const n = this.#buildPrps(map);
      if (n < 0) {
        this.error(`a ${len}-byte buffer at 0x${va.toString(16)} has no PRP layout`);
        result = "error";
      } else {
        const prps = this.#prps;
        let prp2 = 0;
        if (n === 2) prp2 = prps[1]!;
        else if (n > 2) {
          const ev = this.#ev, list = this.prpList.kva;
          for (let i = 1; i < n; i++) {
            const e = prps[i]!, hi = Math.floor(e / TWO32);
            ev.setUint32(0, e - hi * TWO32, true);
            ev.setUint32(4, hi, true);
            this.kernel.pmap.write(list + 8 * (i - 1), this.#entry);
          }
          prp2 = this.prpList.segs[0]![0];
        }
        this.#cid = (this.#cid + 1) & 0xffff;
        this.wr(NVME_REG_OPCODE, op);
        this.wr64(NVME_REG_LBA_LO, NVME_REG_LBA_HI, lba);
        this.wr(NVME_REG_COUNT, count);
        this.wr64(NVME_REG_PRP1_LO, NVME_REG_PRP1_HI, prps[0]!);
        this.wr64(NVME_REG_PRP2_LO, NVME_REG_PRP2_HI, prp2);
        this.wr(NVME_REG_CID, this.#cid);
        // The command runs inside the doorbell store.
        const isr = this.storeAndDeliver(NVME_REG_DOORBELL, 1);
        result = this.#complete(op, len, isr);
      }
      bd.sync(map, toDevice ? BUS_DMASYNC_POSTWRITE : BUS_DMASYNC_POSTREAD);
    } finally {
      bd.unload(map);
    }
    if (result === "ok") {
      s.transfers++;
      s.bytes += len;
      s.bouncedBytes += bounced;
    }
    return result;
  }

  /** Reads the completion after the interrupt whose causes are `isr`; notes a fault. */
  #complete(op: number, len: number, isr: number): TransferResult {
    const status = this.rd(NVME_REG_CQ_STATUS);
    if (!(isr & (INT_DONE | INT_ERROR))) {
      this.error(`no completion interrupt for command ${this.#cid}`);
      return "error";
    }
    if (this.rd(NVME_REG_CQ_CID) !== this.#cid) {
      this.error(`completion for command ${this.rd(NVME_REG_CQ_CID)}, not ${this.#cid}`);
      return "error";
    }
    if (status === NVME_SC_SUCCESS) return "ok";
    if (status === NVME_SC_DATA_TRANSFER_ERROR || status === NVME_SC_PRP_OFFSET_INVALID) {
      if (this.noteFault() > 0) return "fault";
    }
    this.error(`opcode ${op} of ${len} bytes completed with status 0x${status.toString(16)}`);
    return "error";
  }

  /**
   * The map's segments as PRP pieces in #prps: split at page ends; every
   * piece but the first starts a page, every piece but the last ends one.
   * Returns the count, or -1 when the segments break that layout.
   */
  #buildPrps(map: DmaMap): number {
    const prps = this.#prps;
    let n = 0, endsPage = true;
    for (let i = 0; i < map.nsegs; i++) {
      let pa = map.segAddr(i), left = map.segLen(i);
      while (left > 0) {
        const piece = Math.min(left, NVME_PAGE - (pa % NVME_PAGE));
        if (!endsPage || (n > 0 && pa % NVME_PAGE !== 0) || n === MAX_PRPS) return -1;
        prps[n++] = pa;
        endsPage = (pa + piece) % NVME_PAGE === 0;
        pa += piece;
        left -= piece;
      }
    }
    return n;
  }
}
