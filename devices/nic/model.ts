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
 * Descriptor layout (little-endian, both rings):
 *
 * | offset | field   | transmit                       | receive                                   |
 * |--------|---------|--------------------------------|-------------------------------------------|
 * | 0x0    | ADDR_LO | buffer address, low 32 bits    | buffer address, low 32 bits               |
 * | 0x4    | ADDR_HI | high bits (must be 0: 32-bit)  | high bits                                 |
 * | 0x8    | LEN     | bytes in this buffer (1..4096) | driver: buffer size; device: bytes stored |
 * | 0xC    | FLAGS   | `DESC_EOP` on a frame's last   | device writes `DESC_DD`, `DESC_EOP` on the last |
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
 * Registers (32-bit; the common block of `machine/device.ts` — ID, ISR,
 * IER, FAULT_* — at its usual offsets):
 *
 * | offset | name      | access | meaning                                          |
 * |--------|-----------|--------|--------------------------------------------------|
 * | 0x00   | ID        | RO     | `NIC_ID` ("NIC1")                                 |
 * | 0x04   | CTRL      | R/W    | `NIC_CTRL_TX_EN`, `_RX_EN`, `_LOOPBACK`; `_RESET` (self-clearing) |
 * | 0x10   | TX_BASE   | R/W    | transmit ring address (128-byte aligned, < 4 GiB) |
 * | 0x14   | TX_COUNT  | R/W    | transmit descriptors (multiple of 8, 8..4096)    |
 * | 0x18   | TX_HEAD   | RO     | next descriptor the device will read             |
 * | 0x1C   | TX_TAIL   | R/W    | one past the last descriptor ready; the doorbell |
 * | 0x20   | RX_BASE   | R/W    | receive ring address                             |
 * | 0x24   | RX_COUNT  | R/W    | receive descriptors                              |
 * | 0x28   | RX_HEAD   | RO     | next descriptor the device will fill             |
 * | 0x2C   | RX_TAIL   | R/W    | one past the last descriptor given to the device |
 * | 0x30   | STATUS    | RO     | cause of the last error (`NIC_STATUS_*`)         |
 * | 0x60   | TX_FRAMES | RO     | frames sent                                      |
 * | 0x64   | RX_FRAMES | RO     | frames received                                  |
 * | 0x68   | RX_DROPS  | RO     | frames dropped for want of receive descriptors   |
 *
 * ISR bits: `INT_DONE` (a frame was sent), `INT_ERROR`, `NIC_INT_RX` (a
 * frame was received), `NIC_INT_RX_NOBUF` (a frame was dropped).
 *
 * A driver: rings and buffers from a bus_dma tag made from {@link NIC_DMA}
 * (high 4 GiB - 1, 8 segments of at most 4 KiB; rings 128-byte aligned).
 *
 * @module
 */

import {
  DeviceModel,
  DMA_32BIT,
  type DmaConstraints,
  fourcc,
  INT_DONE,
  INT_ERROR,
  type Machine,
} from "../../machine/mod.ts";

/** ID register value: "NIC1". */
export const NIC_ID: number = fourcc("NIC1");

/** Register: control bits. */
export const NIC_REG_CTRL = 0x04;
/** Register: transmit ring base. */
export const NIC_REG_TX_BASE = 0x10;
/** Register: transmit ring descriptor count. */
export const NIC_REG_TX_COUNT = 0x14;
/** Register: transmit head (device). */
export const NIC_REG_TX_HEAD = 0x18;
/** Register: transmit tail (driver; the doorbell). */
export const NIC_REG_TX_TAIL = 0x1c;
/** Register: receive ring base. */
export const NIC_REG_RX_BASE = 0x20;
/** Register: receive ring descriptor count. */
export const NIC_REG_RX_COUNT = 0x24;
/** Register: receive head (device). */
export const NIC_REG_RX_HEAD = 0x28;
/** Register: receive tail (driver). */
export const NIC_REG_RX_TAIL = 0x2c;
/** Register: cause of the last error. */
export const NIC_REG_STATUS = 0x30;
/** Register: frames sent. */
export const NIC_REG_TX_FRAMES = 0x60;
/** Register: frames received. */
export const NIC_REG_RX_FRAMES = 0x64;
/** Register: frames dropped. */
export const NIC_REG_RX_DROPS = 0x68;

/** CTRL: transmit enabled. */
export const NIC_CTRL_TX_EN = 1 << 0;
/** CTRL: receive enabled. */
export const NIC_CTRL_RX_EN = 1 << 1;
/** CTRL: transmitted frames are received. */
export const NIC_CTRL_LOOPBACK = 1 << 2;
/** CTRL: reset the device (reads back 0). */
export const NIC_CTRL_RESET = 0x80000000;

/** ISR bit: a frame was received. */
export const NIC_INT_RX = 1 << 2;
/** ISR bit: a frame was dropped for want of receive descriptors. */
export const NIC_INT_RX_NOBUF = 1 << 3;

/** STATUS: no error. */
export const NIC_STATUS_OK = 0;
/** STATUS: the DMA port refused a transfer (see FAULT_*). */
export const NIC_STATUS_DMA_FAULT = 1;
/** STATUS: a ring base is not 128-byte aligned or its count is bad. */
export const NIC_STATUS_BAD_RING = 2;
/** STATUS: a frame has more than 8 descriptors. */
export const NIC_STATUS_TOO_MANY_SEGMENTS = 3;

/** Descriptor FLAGS: last descriptor of a frame. */
export const DESC_EOP = 1 << 0;
/** Descriptor FLAGS: the device is done with this descriptor. */
export const DESC_DD = 0x80000000;
/** Bytes per descriptor. */
export const DESC_SIZE = 16;
/** Descriptor field offsets. */
export const DESC_ADDR_LO = 0x0, DESC_ADDR_HI = 0x4, DESC_LEN = 0x8, DESC_FLAGS = 0xc;

/** Required alignment of a ring base. */
export const NIC_RING_ALIGN = 128;
/** Most descriptors (segments) per frame. */
export const NIC_MAX_SEGMENTS = 8;
/** Largest buffer per descriptor. */
export const NIC_MAX_SEGMENT_SIZE = 4096;
/** Largest ring. */
export const NIC_MAX_RING = 4096;

/** The DMA constraints of the card. */
export const NIC_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_32BIT,
  alignment: 1,
  boundary: 0,
  maxSegments: NIC_MAX_SEGMENTS,
  maxSegmentSize: NIC_MAX_SEGMENT_SIZE,
});

const TWO32 = 4294967296;

/** One descriptor ring's registers. */
interface Ring {
  base: number;
  count: number;
  head: number;
  tail: number;
}

/** The network card model. */
export class NicModel extends DeviceModel {
  #ctrl = 0;
  #status = NIC_STATUS_OK;
  readonly #tx: Ring = { base: 0, count: 0, head: 0, tail: 0 };
  readonly #rx: Ring = { base: 0, count: 0, head: 0, tail: 0 };
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

  /** Attaches a card named `name` (type "nic") to `machine`. */
  constructor(machine: Machine, name = "nic0") {
    super(machine, { name, type: "nic", id: NIC_ID, dma: NIC_DMA });
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
        this.#setRing(this.#tx, value, this.#tx.count);
        return;
      case NIC_REG_TX_COUNT:
        this.#setRing(this.#tx, this.#tx.base, value);
        return;
      case NIC_REG_TX_TAIL:
        this.#tx.tail = value;
        if (this.#ctrl & NIC_CTRL_TX_EN) this.#transmit();
        return;
      case NIC_REG_RX_BASE:
        this.#setRing(this.#rx, value, this.#rx.count);
        return;
      case NIC_REG_RX_COUNT:
        this.#setRing(this.#rx, this.#rx.base, value);
        return;
      case NIC_REG_RX_TAIL:
        this.#rx.tail = value;
        return;
    }
  }

  #setRing(r: Ring, base: number, count: number): void {
    r.base = base;
    r.count = count;
    r.head = 0;
    r.tail = 0;
  }

  #reset(): void {
    this.#ctrl = 0;
    this.#status = NIC_STATUS_OK;
    this.#setRing(this.#tx, 0, 0);
    this.#setRing(this.#rx, 0, 0);
    this.#txFrames = this.#rxFrames = this.#rxDrops = 0;
    this.resetCommon();
  }

  /** Checks a ring's base and count (and TAIL) before use; records a fault when bad. */
  #ringOk(r: Ring, op: "read" | "write"): boolean {
    const port = this.dma;
    if (r.base % NIC_RING_ALIGN !== 0) {
      return this.#fail(
        NIC_STATUS_BAD_RING,
        port.fault("access", op, r.base, r.count * DESC_SIZE, "ring base is not 128-byte aligned"),
      );
    }
    if (r.count < 8 || r.count > NIC_MAX_RING || r.count % 8 !== 0 || r.tail >= r.count) {
      return this.#fail(
        NIC_STATUS_BAD_RING,
        port.fault(
          "access",
          op,
          r.base,
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
        const pa = tx.base + idx * DESC_SIZE;
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
      const pa = rx.base + idx * DESC_SIZE;
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
