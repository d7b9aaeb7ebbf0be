/**
 * A 32-bit PCI network card with transmit and receive descriptor rings in
 * RAM and a loopback mode that hands every transmitted frame to its own
 * receive ring.
 *
 * Theory. Each ring is an array of `count` 16-byte descriptors at `base`
 * (a physical address below 4 GiB, 128-byte aligned; `count` a multiple of
 * 8 in [8, 4096]). The driver owns the descriptors from TAIL up to HEAD and
 * the device those from HEAD up to TAIL (indices modulo `count`): the driver
 * fills descriptors, then advances TAIL (the doorbell); the device consumes
 * them, writes status back into each, and advances HEAD. Storing BASE or
 * COUNT resets the ring's HEAD and TAIL to 0.
 *
 * The device sets `DESC_DD` (bit 31) in FLAGS when it is done with a
 * descriptor; the driver clears FLAGS before handing a descriptor back.
 *
 * Transmit: on a store to TX_TAIL with CTRL.TX_EN set, the device walks
 * from TX_HEAD: a frame is 1 to 8 descriptors, the last one with
 * `DESC_EOP`. It gathers the frame through its DMA port (each buffer one
 * segment of at most 4096 bytes below 4 GiB; at most 8 segments), marks the
 * descriptors done, advances TX_HEAD and raises `INT_DONE`. A frame whose
 * EOP is not yet before TX_TAIL waits for a later doorbell. With
 * CTRL.LOOPBACK, the frame is then received: it is scattered over receive
 * descriptors from RX_HEAD (each buffer filled up to its LEN, at most 8),
 * their LEN and FLAGS are written back, RX_HEAD advances and `NIC_INT_RX` is
 * raised. When receive is off or too few descriptors are available before
 * RX_TAIL, the frame is dropped: RX_DROPS counts it and `NIC_INT_RX_NOBUF`
 * is raised. Without loopback the frame goes to the wire (and is gone).
 *
 * Errors: a ring not 128-byte aligned or of a bad count, a frame of more
 * than 8 descriptors, a zero-length or too-long buffer, an address the port
 * refuses or that is not RAM: the device records a DMA fault (the common
 * FAULT_* registers), sets STATUS to the cause (`NIC_STATUS_*`), raises
 * `INT_ERROR` and stops at that frame without writing anything for it
 * (TX_HEAD stays on its first descriptor). The driver fixes the ring and
 * stores TX_TAIL again, or resets the device.
 *
 * Registers and the descriptor layout are in `reg.ts`.
 *
 * Timing: a doorbell queues the transmit work on the machine's clock
 * ({@link NIC_LATENCY} nanoseconds later; inside the store when the model is
 * synchronous); the work sends every frame posted by then and, in loopback,
 * receives each at once, raising `INT_DONE` and `NIC_INT_RX` together. A
 * reset drops queued work.
 *
 * A driver: rings and buffers from a bus_dma tag made from the card's
 * limits (`NIC_DMA` in `reg.ts`: high 4 GiB - 1, 8 segments of at most
 * 4 KiB; rings 128-byte aligned).
 *
 * @module
 */

import { DeviceModel, INT_DONE, INT_ERROR, type Machine, TWO32 } from "../../machine/mod.ts";
import {
  DESC_ADDR_HI,
  DESC_ADDR_LO,
  DESC_DD,
  DESC_EOP,
  DESC_FLAGS,
  DESC_LEN,
  DESC_SIZE,
  NIC_CTRL_LOOPBACK,
  NIC_CTRL_RESET,
  NIC_CTRL_RX_EN,
  NIC_CTRL_TX_EN,
  NIC_DMA,
  NIC_ID,
  NIC_INT_RX,
  NIC_INT_RX_NOBUF,
  NIC_MAX_RING,
  NIC_MAX_SEGMENT_SIZE,
  NIC_MAX_SEGMENTS,
  NIC_REG_CTRL,
  NIC_REG_RX_BASE,
  NIC_REG_RX_BASE_HI,
  NIC_REG_RX_COUNT,
  NIC_REG_RX_DROPS,
  NIC_REG_RX_FRAMES,
  NIC_REG_RX_HEAD,
  NIC_REG_RX_TAIL,
  NIC_REG_STATUS,
  NIC_REG_TX_BASE,
  NIC_REG_TX_BASE_HI,
  NIC_REG_TX_COUNT,
  NIC_REG_TX_FRAMES,
  NIC_REG_TX_HEAD,
  NIC_REG_TX_TAIL,
  NIC_RING_ALIGN,
  NIC_STATUS_BAD_RING,
  NIC_STATUS_DMA_FAULT,
  NIC_STATUS_OK,
  NIC_STATUS_TOO_MANY_SEGMENTS,
} from "./reg.ts";

/** Nanoseconds from a doorbell to the card's work on it. */
export const NIC_LATENCY = 10_000;

/** Options of {@link NicModel}. */
export interface NicOptions {
  /** Instance name (default "nic0"). */
  name?: string;
  /** Work inside the doorbell store (default false: later, on the clock). */
  synchronous?: boolean;
}

/** One descriptor ring's registers. */
interface Ring {
  base: number;
  baseHi: number;
  count: number;
  head: number;
  tail: number;
}

/** The network card model. */
export class NicModel extends DeviceModel {
  #ctrl = 0;
  #status = NIC_STATUS_OK;
  readonly #tx: Ring = { base: 0, baseHi: 0, count: 0, head: 0, tail: 0 };
  readonly #rx: Ring = { base: 0, baseHi: 0, count: 0, head: 0, tail: 0 };
  #txFrames = 0;
  #rxFrames = 0;
  #rxDrops = 0;

  readonly #desc = new Uint8Array(DESC_SIZE);
  readonly #descView = new DataView(this.#desc.buffer);
  readonly #word = new Uint8Array(8);
  readonly #wordView = new DataView(this.#word.buffer);
  readonly #segs = new Float64Array(2 * NIC_MAX_SEGMENTS);
  readonly #descAt = new Float64Array(NIC_MAX_SEGMENTS);
  readonly #frame = new Uint8Array(NIC_MAX_SEGMENTS * NIC_MAX_SEGMENT_SIZE);

  /** Attaches a card (type "nic") to `machine`. */
  constructor(machine: Machine, options?: NicOptions) {
    if (options === undefined) options = {};
    super(machine, {
      name: options.name ?? "nic0",
      type: "nic",
      id: NIC_ID,
      dma: NIC_DMA,
      synchronous: options.synchronous,
    });
  }

  /** Model register loads. */
  protected readReg(offset: number): number {
    switch (offset) {
      case NIC_REG_CTRL:
        return this.#ctrl;
      case NIC_REG_TX_BASE:
        return this.#tx.base;
      case NIC_REG_TX_COUNT:
        return this.#tx.count;
      case NIC_REG_TX_HEAD:
        return this.#tx.head;
      case NIC_REG_TX_TAIL:
        return this.#tx.tail;
      case NIC_REG_RX_BASE:
        return this.#rx.base;
      case NIC_REG_RX_COUNT:
        return this.#rx.count;
      case NIC_REG_RX_HEAD:
        return this.#rx.head;
      case NIC_REG_RX_TAIL:
        return this.#rx.tail;
      case NIC_REG_STATUS:
        return this.#status;
      case NIC_REG_TX_BASE_HI:
        return this.#tx.baseHi;
      case NIC_REG_RX_BASE_HI:
        return this.#rx.baseHi;
      case NIC_REG_TX_FRAMES:
        return this.#txFrames;
      case NIC_REG_RX_FRAMES:
        return this.#rxFrames;
      case NIC_REG_RX_DROPS:
        return this.#rxDrops;
      default:
        return 0;
    }
  }

  /** Model register stores. */
  protected writeReg(offset: number, value: number): void {
    switch (offset) {
      case NIC_REG_CTRL:
        if (value & NIC_CTRL_RESET) this.#reset();
        else this.#ctrl = value & (NIC_CTRL_TX_EN | NIC_CTRL_RX_EN | NIC_CTRL_LOOPBACK);
        return;
      case NIC_REG_TX_BASE:
        this.#setRing(this.#tx, value, this.#tx.baseHi, this.#tx.count);
        return;
      case NIC_REG_TX_BASE_HI:
        this.#setRing(this.#tx, this.#tx.base, value, this.#tx.count);
        return;
      case NIC_REG_TX_COUNT:
        this.#setRing(this.#tx, this.#tx.base, this.#tx.baseHi, value);
        return;
      case NIC_REG_TX_TAIL:
        this.#tx.tail = value;
        if (this.#ctrl & NIC_CTRL_TX_EN) this.later(NIC_LATENCY, () => this.#transmit());
        return;
      case NIC_REG_RX_BASE:
        this.#setRing(this.#rx, value, this.#rx.baseHi, this.#rx.count);
        return;
      case NIC_REG_RX_BASE_HI:
        this.#setRing(this.#rx, this.#rx.base, value, this.#rx.count);
        return;
      case NIC_REG_RX_COUNT:
        this.#setRing(this.#rx, this.#rx.base, this.#rx.baseHi, value);
        return;
      case NIC_REG_RX_TAIL:
        this.#rx.tail = value;
        return;
    }
  }

  #setRing(r: Ring, base: number, baseHi: number, count: number): void {
    r.base = base;
    r.baseHi = baseHi;
    r.count = count;
    r.head = 0;
    r.tail = 0;
  }

  #reset(): void {
    this.#ctrl = 0;
    this.#status = NIC_STATUS_OK;
    this.#setRing(this.#tx, 0, 0, 0);
    this.#setRing(this.#rx, 0, 0, 0);
    this.#txFrames = this.#rxFrames = this.#rxDrops = 0;
    this.resetCommon();
  }

  /** A ring's base address: both halves of its register pair. */
  #base(r: Ring): number {
    return r.baseHi * TWO32 + r.base;
  }

  /** Checks a ring's base and count (and TAIL) before use; records a fault when bad. */
  #ringOk(r: Ring, op: "read" | "write"): boolean {
    const port = this.dma;
    if (r.base % NIC_RING_ALIGN !== 0) {
      return this.#fail(
        NIC_STATUS_BAD_RING,
        port.fault(
          "access",
          op,
          this.#base(r),
          r.count * DESC_SIZE,
          "ring base is not 128-byte aligned",
        ),
      );
    }
    if (r.count < 8 || r.count > NIC_MAX_RING || r.count % 8 !== 0 || r.tail >= r.count) {
      return this.#fail(
        NIC_STATUS_BAD_RING,
        port.fault(
          "access",
          op,
          this.#base(r),
          r.count * DESC_SIZE,
          `ring count ${r.count} (tail ${r.tail}) is not a multiple of 8 in [8, 4096]`,
        ),
      );
    }
    return true;
  }

  #fail(status: number, _recorded: false): false {
    this.#status = status;
    this.interrupt(INT_ERROR);
    return false;
  }

  /** Reads the descriptor at `pa` into #desc; false (recorded) on a fault. */
  #readDesc(pa: number): boolean {
    return this.dma.read(pa, this.#desc, 0, DESC_SIZE) ||
      this.#fail(NIC_STATUS_DMA_FAULT, false);
  }

  /** Writes LEN and FLAGS of the descriptor at `pa`. */
  #writeBack(pa: number, len: number, flags: number): boolean {
    this.#wordView.setUint32(0, len, true);
    this.#wordView.setUint32(4, flags >>> 0, true);
    return this.dma.write(pa + DESC_LEN, this.#word, 0, 8) ||
      this.#fail(NIC_STATUS_DMA_FAULT, false);
  }

  #transmit(): void {
    const tx = this.#tx;
    if (!this.#ringOk(tx, "read")) return;
    const segs = this.#segs, at = this.#descAt, dv = this.#descView;
    while (tx.head !== tx.tail) {
      // Gather one frame's descriptors, up to EOP.
      let n = 0, idx = tx.head, eop = false;
      while (idx !== tx.tail && n < NIC_MAX_SEGMENTS) {
        const pa = this.#base(tx) + idx * DESC_SIZE;
        if (!this.#readDesc(pa)) return;
        at[n] = pa;
        segs[2 * n] = dv.getUint32(DESC_ADDR_LO, true) + dv.getUint32(DESC_ADDR_HI, true) * TWO32;
        segs[2 * n + 1] = dv.getUint32(DESC_LEN, true);
        n++;
        idx = (idx + 1) % tx.count;
        if (dv.getUint32(DESC_FLAGS, true) & DESC_EOP) {
          eop = true;
          break;
        }
      }
      if (!eop) {
        if (n < NIC_MAX_SEGMENTS) return; // the rest of the frame is not posted yet
        this.dma.fault(
          "access",
          "read",
          segs[0]!,
          0,
          `frame at descriptor ${tx.head} has more than ${NIC_MAX_SEGMENTS} descriptors`,
        );
        this.#fail(NIC_STATUS_TOO_MANY_SEGMENTS, false);
        return;
      }
      const len = this.dma.readSg(segs, n, this.#frame);
      if (len < 0) {
        this.#fail(NIC_STATUS_DMA_FAULT, false);
        return;
      }
      for (let i = 0; i < n; i++) {
        if (!this.#writeBack(at[i]!, segs[2 * i + 1]!, (i === n - 1 ? DESC_EOP : 0) | DESC_DD)) {
          return;
        }
      }
      tx.head = idx;
      this.#txFrames++;
      this.interrupt(INT_DONE);
      if (this.#ctrl & NIC_CTRL_LOOPBACK) this.#receive(len);
    }
  }

  /** Receives the first `len` bytes of #frame into the receive ring (loopback). */
  #receive(len: number): void {
    const rx = this.#rx;
    if (!(this.#ctrl & NIC_CTRL_RX_EN)) {
      this.#drop();
      return;
    }
    if (!this.#ringOk(rx, "write")) return;
    const segs = this.#segs, at = this.#descAt, dv = this.#descView;
    let n = 0, idx = rx.head, left = len;
    while (left > 0) {
      if (idx === rx.tail || n === NIC_MAX_SEGMENTS) {
        this.#drop();
        return;
      }
      const pa = this.#base(rx) + idx * DESC_SIZE;
      if (!this.#readDesc(pa)) return;
      const size = dv.getUint32(DESC_LEN, true);
      const piece = Math.min(size, left);
      at[n] = pa;
      segs[2 * n] = dv.getUint32(DESC_ADDR_LO, true) + dv.getUint32(DESC_ADDR_HI, true) * TWO32;
      // A zero-sized buffer goes to the port as it is: it refuses it.
      segs[2 * n + 1] = size === 0 ? 0 : piece;
      n++;
      idx = (idx + 1) % rx.count;
      if (size === 0) break;
      left -= piece;
    }
    if (this.dma.writeSg(segs, n, this.#frame) < 0) {
      this.#fail(NIC_STATUS_DMA_FAULT, false);
      return;
    }
    for (let i = 0; i < n; i++) {
      if (!this.#writeBack(at[i]!, segs[2 * i + 1]!, (i === n - 1 ? DESC_EOP : 0) | DESC_DD)) {
        return;
      }
    }
    rx.head = idx;
    this.#rxFrames++;
    this.interrupt(NIC_INT_RX);
  }

  #drop(): void {
    this.#rxDrops++;
    this.interrupt(NIC_INT_RX_NOBUF);
  }
}
