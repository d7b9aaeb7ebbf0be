/**
 * The driver of the NVMe-style block device (`model.ts`): block writes
 * from kernel buffers and block reads into them, described to the device
 * by PRP entries built from bus_dma segments.
 *
 * Theory. The tag is the device's own (any 64-bit address, 4-byte
 * alignment, segments of at most a page that never cross one, MDTS + 1 of
 * them), narrowed to the driver's largest command. So every segment of a
 * loaded map is one PRP entry's piece: the first may start inside its page
 * and runs to the page's end, the following ones are whole pages, the last
 * may stop short. The driver splits segments at page ends anyway (with tags
 * ignored a segment may span pages) and refuses, as an error, a layout PRPs
 * cannot express rather than let the device move the wrong bytes. One entry
 * goes in PRP1, two in PRP1 and PRP2; more go in the PRP list, a page of
 * DMA memory loaded into a map of its own at attach, which PRP2 then points
 * to. The device reaches all of RAM, so buffers above 4 GiB go through in
 * place; a buffer not 4-byte aligned is refused (PRP1 must be).
 *
 * A command: load the map; sync (PREWRITE for a disk write, PREREAD for a
 * read); fill the PRP list and sync it PREWRITE; write OPCODE, LBA, COUNT
 * (blocks, 1-based), PRP1, PRP2 and a fresh CID, each a full register
 * pair; store the doorbell and wait for the completion interrupt (the
 * device completes later, on the machine's clock); check CQ_STATUS and that
 * CQ_CID echoes the command's identifier; sync (POSTWRITE or POSTREAD) and
 * unload. A data-transfer or PRP-offset status is a DMA fault the device
 * recorded. With the deliberate bug `early-unload` the data map is
 * unloaded right after the doorbell, while the command is in flight.
 *
 * Data structures: the data map, the PRP list page and its map, the PRP
 * pieces of the command in a Float64Array and an 8-byte entry scratch, all
 * made at attach. Cost of a command: O(pages) to load and build PRPs.
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
import { type DeviceInfo, INT_DONE, INT_ERROR, REG_IER, TWO32 } from "../../machine/mod.ts";
import {
  NVME_ID,
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
} from "./reg.ts";
import { DriverBase, type DriverSpec, type TransferResult } from "../driver.ts";
import type { DriverKernel } from "../kernel_if.ts";

/** Largest command the driver issues: 256 KiB (the device takes up to MDTS pages). */
export const NVME_MAX_TRANSFER: number = 64 * NVME_PAGE;

/** PRP entries: one per page of the largest transfer, plus one for a start inside a page. */
const MAX_PRPS = NVME_MAX_TRANSFER / NVME_PAGE + 1;

// The device reaches all of RAM and PRP1 must be 4-byte aligned, so the
// driver refuses a buffer that would need bouncing: no reservation.
const SPEC: DriverSpec = {
  type: "nvme",
  id: NVME_ID,
  narrow: { maxTransfer: NVME_MAX_TRANSFER },
  bouncePages: 0,
};

/** Driver of the NVMe-style block device. */
export class NvmeDriver extends DriverBase {
  /** The data map (one command at a time). */
  readonly map: DmaMap;
  /** The PRP list page. */
  readonly prpList: DmaMemory;
  /** The PRP list page's map, loaded from attach to detach. */
  readonly prpMap: DmaMap;
  /** Bytes per block. */
  readonly blockSize: number;
  /** Capacity in blocks. */
  readonly blocks: number;

  // The command's PRP pieces: address, length pairs.
  readonly #pieces = new Float64Array(2 * MAX_PRPS);
  readonly #entry = new Uint8Array(8);
  readonly #ev = new DataView(this.#entry.buffer);
  #cid = 0;

  /** Attaches to the device `info`: tag, PRP list page and its map, data map, interrupt. */
  constructor(kernel: DriverKernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    try {
      this.blockSize = this.rd(NVME_REG_BLOCK_SIZE);
      this.blocks = this.rd64(NVME_REG_BLOCKS_LO, NVME_REG_BLOCKS_HI);
      this.prpList = this.allocMemory(this.tag, NVME_PAGE, { nsegs: 1 });
      this.prpMap = this.createMap(this.tag, NVME_PAGE, 1, { name: `${this.name} prp list` });
      this.busDma.loadMemory(this.prpMap, this.prpList);
      this.map = this.createMap(this.tag, NVME_MAX_TRANSFER, MAX_PRPS, {
        name: `${this.name} data`,
      });
      this.establish();
      this.enableInterrupts();
    } catch (e) {
      this.abandon(e);
    }
  }

  /** Writes the `len` bytes at kernel address `va` to the disk from block `lba`. */
  write(lba: number, va: number, len: number): Promise<TransferResult> {
    return this.#submit(NVME_OP_WRITE, lba, va, len);
  }

  /** Reads `len` bytes of the disk from block `lba` into the kernel buffer at `va`. */
  read(lba: number, va: number, len: number): Promise<TransferResult> {
    return this.#submit(NVME_OP_READ, lba, va, len);
  }

  /** Verifies the driver's invariants. */
  check(): void {
    this.checkCounters("NvmeDriver");
    const s = this.counters;
    if (s.bouncedBytes > s.bytes) {
      throw new KernelError("CORRUPT", "NvmeDriver.check: more bytes bounced than moved");
    }
    if (this.detached) return;
    if (this.map.mapsize !== 0) {
      throw new KernelError("CORRUPT", "NvmeDriver.check: map left loaded");
    }
    if (this.prpMap.mapsize !== NVME_PAGE) {
      throw new KernelError("CORRUPT", "NvmeDriver.check: the PRP list is not loaded");
    }
  }

  /** Masks the device's interrupts. */
  protected quiesce(): void {
    this.wr(REG_IER, 0);
  }

  /** Checks the arguments (refusing before anything happens), then queues the command. */
  #submit(op: number, lba: number, va: number, len: number): Promise<TransferResult> {
    try {
      this.assertAttached();
      const bs = this.blockSize;
      checkInteger("len", len, bs, NVME_MAX_TRANSFER);
      if (len % bs !== 0) {
        throw new KernelError("EINVAL", `len must be a multiple of ${bs}, got ${describe(len)}`);
      }
      checkInteger("lba", lba, 0, this.blocks - len / bs);
      checkInteger("va", va);
      if (va % 4 !== 0) {
        throw new KernelError("EINVAL", `va must be 4-byte aligned for PRP1, got ${describe(va)}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(() => this.#io(op, lba, va, len));
  }

  async #io(op: number, lba: number, va: number, len: number): Promise<TransferResult> {
    const bd = this.busDma, map = this.map, s = this.counters;
    const toDevice = op === NVME_OP_WRITE;
    await this.load(map, { kind: "kva", va, len });
    const bounced = map.bouncedBytes;
    let result: TransferResult = "ok";
    let loaded = true;
    try {
      this.sync(map, toDevice ? BUS_DMASYNC_PREWRITE : BUS_DMASYNC_PREREAD);
      const n = this.#buildPrps(map);
      if (n < 0) {
        this.error(`a ${len}-byte buffer at 0x${va.toString(16)} has no PRP layout`);
        result = "error";
      } else {
        const pieces = this.#pieces;
        let prp2 = 0, breach = this.breach(pieces, n);
        if (n === 2) prp2 = pieces[2]!;
        else if (n > 2) {
          const ev = this.#ev, list = this.prpList.kva;
          for (let i = 1; i < n; i++) {
            const e = pieces[2 * i]!, hi = Math.floor(e / TWO32);
            ev.setUint32(0, e - hi * TWO32, true);
            ev.setUint32(4, hi, true);
            this.kernel.write(list + 8 * (i - 1), this.#entry);
          }
          this.sync(this.prpMap, BUS_DMASYNC_PREWRITE);
          prp2 = this.prpMap.segAddr(0);
          pieces[0] = prp2; // the list page, as the device reads it
          pieces[1] = 8 * (n - 1);
          breach ||= this.breach(pieces, 1);
        }
        this.#cid = (this.#cid + 1) & 0xffff;
        this.wr(NVME_REG_OPCODE, op);
        this.wr64(NVME_REG_LBA_LO, NVME_REG_LBA_HI, lba);
        this.wr(NVME_REG_COUNT, len / this.blockSize);
        this.wr64(NVME_REG_PRP1_LO, NVME_REG_PRP1_HI, map.segAddr(0));
        this.wr64(NVME_REG_PRP2_LO, NVME_REG_PRP2_HI, prp2);
        this.wr(NVME_REG_CID, this.#cid);
        this.start(NVME_REG_DOORBELL, 1);
        if (this.kernel.driverBugs.has("early-unload")) {
          bd.unload(map);
          loaded = false;
        }
        const isr = await this.waitFor(INT_DONE | INT_ERROR);
        result = this.account(this.#complete(op, len, isr), breach);
      }
      if (loaded) this.sync(map, toDevice ? BUS_DMASYNC_POSTWRITE : BUS_DMASYNC_POSTREAD);
    } finally {
      if (loaded) bd.unload(map);
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
    if (!(isr & (INT_DONE | INT_ERROR))) {
      this.error(`no completion interrupt for command ${this.#cid}`);
      return "error";
    }
    const status = this.rd(NVME_REG_CQ_STATUS);
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
   * The map's segments as PRP pieces in #pieces: split at page ends; every
   * piece but the first starts a page, every piece but the last ends one.
   * Returns the count, or -1 when the segments break that layout.
   */
  #buildPrps(map: DmaMap): number {
    const pieces = this.#pieces;
    let n = 0, endsPage = true;
    for (let i = 0; i < map.nsegs; i++) {
      let pa = map.segAddr(i), left = map.segLen(i);
      while (left > 0) {
        const piece = Math.min(left, NVME_PAGE - (pa % NVME_PAGE));
        if (!endsPage || (n > 0 && pa % NVME_PAGE !== 0) || n === MAX_PRPS) return -1;
        pieces[2 * n] = pa;
        pieces[2 * n + 1] = piece;
        n++;
        endsPage = (pa + piece) % NVME_PAGE === 0;
        pa += piece;
        left -= piece;
      }
    }
    return n;
  }
}
